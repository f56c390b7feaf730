"""Fine-tuning from the answer: how many steps the chosen start saves against random init.

Cases: bench/_frontdoor_cases.py (tasks no generator of the demo zoo trained on). Per case and
architecture the answer's choice (`Zoo.answer` with --arch: its best retrieved or best generated start,
by the product's default estimate) and random init are fine-tuned with the same schedule (same seed,
split, steps; no early stopping). Target accuracy: 95 % of random init's final held-out accuracy;
steps are read off the held-out curve, evaluated after every step (a start already there at step 0
counts as one step; one that never gets there counts as the whole schedule).
"""

from __future__ import annotations

from bench._frontdoor_cases import cells, mean
from igpg_zoo.finetune.compare import steps_to
from igpg_zoo.finetune.train import Curve

TITLE = "Fine-tuning from the answer"


def _curve(d: dict) -> Curve:
    return Curve(d["steps"], d["val_acc"], d["loss"])


def run(quick: bool) -> dict:
    data = cells(quick)
    rows, lines = [], ["| case | kind | arch | answer | target | steps random | steps answer | speed-up | "
                       "acc@1 epoch answer / random |", "|---|---|---|---|---|---|---|---|---|"]
    for task, case in data["cases"].items():
        for c in case["cells"]:
            rnd, ans = _curve(c["runs"]["random"]["curve"]), _curve(c["runs"][c["choice"]]["curve"])
            target = 0.95 * rnd.val_acc[-1]
            s_rnd, s_ans = steps_to(rnd, target), steps_to(ans, target)
            s_ans_eff = c["total"] if s_ans is None else max(s_ans, 1)
            speed = max(s_rnd or c["total"], 1) / s_ans_eff
            ep = str(c["per_epoch"])
            rows.append({"case": task, "kind": case["kind"], "arch": c["arch"], "choice": c["choice"],
                         "target": target, "steps_random": s_rnd, "steps_answer": s_ans, "speedup": speed,
                         "acc_epoch_answer": c["runs"][c["choice"]]["test_at"].get(ep),
                         "acc_epoch_random": c["runs"]["random"]["test_at"].get(ep)})
            lines.append(f"| {task} | {case['kind']} | {c['arch']} | {c['choice']} | {target:.3f} | {s_rnd} | {s_ans} | "
                         f"{speed:.1f}x | {rows[-1]['acc_epoch_answer']:.3f} / {rows[-1]['acc_epoch_random']:.3f} |")
    cmd = "python -m bench finetune" + (" --quick" if quick else "")
    held = [r["speedup"] for r in rows if r["kind"] == "held-out"]
    summary = [
        {"measure": "steps to 95 % of random init's final held-out accuracy: random / answer (mean over every case "
                    "and architecture)", "target": ">= 3x fewer", "value": f"{mean(r['speedup'] for r in rows):.1f}x "
                    f"({len(rows)} cells; held-out tasks only: {mean(held) or 0:.1f}x over {len(held)})",
         "met": mean(r["speedup"] for r in rows) >= 3, "command": cmd},
        {"measure": "test accuracy after one epoch: answer vs random init (mean)", "target": "–",
         "value": f"{mean(r['acc_epoch_answer'] for r in rows):.3f} vs {mean(r['acc_epoch_random'] for r in rows):.3f}",
         "met": None, "command": cmd},
    ]
    details = (__doc__.split("\n\n")[1].replace("\n", " ") + "\n\n" + "\n".join(lines[:34]) +
               f"\n\nSizes: {data['sizes']}; zoo: {data['zoo']}; a shared 2-core machine.")
    return {"summary": summary, "details": details, "data": {"rows": rows}}
