"""The decision between the best retrieved and the best generated start, and its one-sentence reason.

With the user's data both are ranked by the same estimate on the held-out part and the higher
one wins (a tie goes to the retrieved member: measured and with provenance). Without data,
``auto`` retrieves (stored members carry measured accuracy, draws only the prior's likelihood).
A draw that replicates a member never stands as "generated": it is answered as that member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from igpg_zoo.answer.candidates import Candidate
from igpg_zoo.errors import NothingToReturn


@dataclass
class Decision:
    choice: str  # "retrieved" | "generated"
    chosen: Candidate
    mode: str
    reason: str
    best_retrieved: Candidate | None
    best_generated: Candidate | None

    def to_dict(self) -> dict[str, Any]:
        def brief(c: Candidate | None) -> dict | None:
            return None if c is None else {"label": c.label, "arch": c.arch, "estimate": c.estimate,
                                           "id": c.record.id if c.record is not None else None}

        return {"choice": self.choice, "mode": self.mode, "reason": self.reason, "chosen": brief(self.chosen),
                "best_retrieved": brief(self.best_retrieved), "best_generated": brief(self.best_generated)}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _est(c: Candidate) -> str:
    """The candidate's estimate, named (``0.712 loo_margin``) when it was scored."""
    name = getattr(c.scored, "estimate", None)
    return _fmt(c.estimate) + (f" {name}" if name and c.estimate is not None else "")


def _near(c: Candidate) -> str:
    nearest = (c.draw or {}).get("nearest") or {}
    if nearest.get("id") is None:
        return ""
    return f"; nearest member #{nearest['id']} at {100 * nearest.get('relative_distance', 0.0):.1f} % of its norm"


def _with_data(r: Candidate | None, g: Candidate | None, n_draws: int, seconds: float | None) -> tuple[str, str]:
    took = f" ({seconds:.1f} s to generate)" if seconds is not None else ""
    if g is None or (r is not None and r.estimate >= g.estimate):
        other = (f" vs {_est(g)} for the best of {n_draws} generated{took}" if g is not None
                 else " (no generated draw to compare)")
        copied = " (a generated draw replicated it)" if (r.draw or {}).get("replica_of") else ""
        return "retrieved", f"retrieved {r.label}{copied}: {_est(r)} on your held-out sample{other}"
    other = f" vs {_est(r)} for retrieved {r.label}" if r is not None else ""
    return "generated", (f"generated {g.label} of {g.arch}: {_est(g)} on your held-out sample{other}{took}"
                         f"{_near(g)}")


def decide(retrieved: list[Candidate], generated: list[Candidate], mode: str, has_data: bool,
           generate_seconds: float | None = None) -> Decision:
    """``retrieved`` and ``generated`` best first; the decision under ``mode``."""
    r = retrieved[0] if retrieved else None
    g = generated[0] if generated else None
    if mode == "generate" and g is None:  # every draw replicated a member: the best such member answers
        r = next((c for c in retrieved if (c.draw or {}).get("replica_of")), r)
    if mode == "retrieve" or (mode == "auto" and not has_data) or (mode == "generate" and g is None):
        if r is None:
            raise NothingToReturn("nothing to answer with: no stored member fits the query; widen the filters, "
                                  "give another --arch, or train a generator and use --mode generate")
        why = (f"retrieved {r.label}: {_est(r)} on your held-out sample" if has_data else
               f"retrieved {r.label}: the best match" + (f" (text score {r.text_score:.3f})" if r.text_score else ""))
        if mode == "generate":
            why += "; every draw replicated a member, so the member is the answer"
        elif mode == "auto" and g is not None:
            why += f"; without data the draws (log-likelihood {g.draw['log_likelihood']:.1f}) are not compared"
        return Decision("retrieved", r, mode, why, r, g)
    if mode == "generate":
        vs = f" (retrieved {r.label}: {_est(r)})" if r is not None else ""
        why = (f"generated {g.label} of {g.arch}: {_est(g)} on your held-out sample{vs}{_near(g)}" if has_data else
               f"generated {g.label} of {g.arch}: the likeliest of {len(generated)} draws "
               f"(log-likelihood {g.draw['log_likelihood']:.1f}){_near(g)}")
        return Decision("generated", g, mode, why, r, g)
    choice, why = _with_data(r, g, len(generated), generate_seconds)
    return Decision(choice, r if choice == "retrieved" else g, mode, why, r, g)
