"""The answer to "I have this dataset (and maybe an architecture): which weights should I start from?"

Library API (the CLI's ``query`` and ``select`` are thin layers over it)::

    from igpg_zoo import open_zoo
    from igpg_zoo.answer import AnswerSettings, SelectSettings

    with open_zoo("registry.db") as zoo:
        a = zoo.answer(text=None, data="mine.npz", arch=(), filters=None,
                       settings=AnswerSettings(mode="auto"), out=None, fmt="safetensors",
                       overwrite=False, record=True, label="label", prior_id=None)
        a.decision.choice          # "retrieved" | "generated"
        a.decision.chosen          # Candidate: .arch, .record (Checkpoint or None), .estimate, .draw
        a.decision.reason          # one sentence naming both options' estimates
        a.weights                  # the chosen start (state dict for a.decision.chosen.arch; head fitted
                                   # on the sample's fit part when data was given)
        a.retrieved, a.generated   # scored candidates, best first; a.proposals (no --arch), a.id
        a.baselines                # [random init of the chosen arch, scored the same way] (with data)
        a.weights_of(a.generated[0])  # any candidate's start as it would be handed out
        a.sample                   # UserSample: x_fit / y_fit (heads fitted), x_held / y_held (scored),
                                   # .dataset (the loaded data, test split untouched), .fingerprint
        a.to_dict()                # what ``query --json`` prints (``decision`` included)

        s = zoo.select("mine.npz", arch=(), filters=None, settings=SelectSettings(k=10))
        s.rows                     # Ranked: .record, .arch, .estimate, .held_accuracy, .cached
        s.ranks                    # {"estimate" | "acc" | "params": [checkpoint ids, best first]}

    reproduce(zoo, answer_id, data)  # the recorded answer made again (same decision on the same data)

``data`` is a path (.npz / .csv / image folder, igpg_zoo.data.userdata) or a loaded Dataset.
``filters``: keyword filters of ``Zoo.list`` (dataset, task, kind, tags, where); ``arch``: patterns
matching a member's stored architecture or the one it becomes for the data (resized head).
Scores use only the data's training split: up to ``probe`` samples, ``held_fraction`` of them held
out for the estimate, the rest fitting heads; the test split is never read.
Modules: settings (defaults), sample (fit / held-out split, fingerprint), heads (which architecture
takes the data, head resize and ridge fit), estimate (ridge / knn / logme), candidates (retrieval,
diversification), generated (the only calls into the generator), decide, proposals, compose
(``answer``, ``reproduce``), record (stored answers), selection (``select``).
"""

from __future__ import annotations

from igpg_zoo.answer.settings import ESTIMATES, MODES, AnswerSettings, SelectSettings


def answer(zoo, text=None, data=None, arch=(), **options):
    """See the module doc; ``igpg_zoo.answer.compose.answer``."""
    from igpg_zoo.answer.compose import answer as run

    return run(zoo, text, data, tuple(arch), **options)


def select(zoo, data, arch=(), **options):
    """See the module doc; ``igpg_zoo.answer.selection.select``."""
    from igpg_zoo.answer.selection import select as run

    return run(zoo, data, tuple(arch), **options)


def reproduce(zoo, answer_id: int, data=None):
    """See the module doc; ``igpg_zoo.answer.compose.reproduce``."""
    from igpg_zoo.answer.compose import reproduce as run

    return run(zoo, answer_id, data)


__all__ = ["ESTIMATES", "MODES", "AnswerSettings", "SelectSettings", "answer", "reproduce", "select"]
