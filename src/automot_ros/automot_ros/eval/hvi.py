"""`automot eval hvi`: answer accuracy on a collection's held-out templated questions (no ROS).

For evenly spaced samples of the split, the UE prefills the sample's context (its 4 front
frames and navigation instruction, as the understanding node does), and the model answers
every templated question of the sample (data/qa.py) by greedy decoding after that context,
exactly as the language node does. An answer is scored on the fact its kind asks for, read
from the answer text by the same templates the reference answers follow (``answer_key``):

| kind | correct when |
| --- | --- |
| action | the longitudinal and lateral action both match (the reason is scored apart) |
| lead | yes/no matches |
| nearby | the vehicle count matches |
| lane | lane and lane count match |
| route | the direction (straight / left / right / destination) matches |
| speed | within SPEED_TOLERANCE_MPS |

An answer that follows no template is wrong. ``exact`` is the stricter whole-answer match;
``majority_baseline`` the accuracy of always giving the most common reference fact.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch

SPEED_TOLERANCE_MPS = 1.0
_ACTION = re.compile(r"should (stop|slow down|keep its speed|speed up) and "
                     r"(go straight|bear slightly left|turn left|bear slightly right|turn right|"
                     r"change to the lane on the (?:left|right))")
_REASON = re.compile(r"because (.+?)[.]?$")
_COUNT = re.compile(r"^(\d+) vehicles? within")
_LANE = re.compile(r"Lane (\d+) of (\d+)")
_SPEED = re.compile(r"^(-?\d+(?:\.\d+)?) m/s")


@dataclass
class HviOptions:
    data: str
    out: str
    split: str = "heldout"
    model: str = "smol"
    checkpoint: str = "auto"
    samples: int = 40
    max_new_tokens: int = 48
    threads: int = 0


def answer_key(kind: str, text: str):
    """The fact an answer of ``kind`` states (module table), or None if it follows no template."""
    text = text.strip()
    if kind == "action":
        m = _ACTION.search(text)
        return None if m is None else (m.group(1), m.group(2).replace("change to the lane on the", "lane change"))
    if kind == "lead":
        return "yes" if text.startswith("Yes") else ("no" if text.startswith("No") else None)
    if kind == "nearby":
        if text.startswith("No vehicles"):
            return 0
        m = _COUNT.match(text)
        return None if m is None else int(m.group(1))
    if kind == "lane":
        m = _LANE.search(text)
        return None if m is None else (int(m.group(1)), int(m.group(2)))
    if kind == "route":
        for word, key in (("destination", "destination"), ("turns left", "left"), ("turns right", "right"),
                          ("Straight on for", "straight")):
            if word in text:
                return key
        return None
    if kind == "speed":
        m = _SPEED.match(text)
        return None if m is None else float(m.group(1))
    raise ValueError(f"unknown question kind {kind!r}")


def reason_key(text: str) -> Optional[str]:
    m = _REASON.search(text.strip())
    return None if m is None else re.sub(r"\d+", "N", m.group(1))


def is_correct(kind: str, predicted: str, reference: str) -> bool:
    got, want = answer_key(kind, predicted), answer_key(kind, reference)
    if got is None or want is None:
        return False
    if kind == "speed":
        return abs(got - want) <= SPEED_TOLERANCE_MPS
    return got == want


@torch.no_grad()
def run_hvi(opts: HviOptions, log=print) -> dict:
    from automot_ros.data.dataset import DrivingDataset
    from automot_ros.eval.held_out import open_evaluation

    t0 = time.perf_counter()
    model, checkpoint, out = open_evaluation(opts.model, opts.checkpoint, opts.out, opts.threads)
    dataset = DrivingDataset(opts.data, opts.split, model=model.cfg)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(opts.samples, len(dataset))).round().astype(int))
    log(f"hvi: model {model.model_id} ({checkpoint or 'untrained'}), {len(picks)} samples of the {opts.split!r} "
        f"split of {opts.data}")
    records = []
    with open(out / "answers.jsonl", "w") as f:
        for n, i in enumerate(picks):
            item = dataset[int(i)]
            context = model.understand(item["frames"], item["instruction"])
            for qa in item["qa"]:
                answer = model.answer(context, qa["question"], max_new_tokens=opts.max_new_tokens)
                record = {"seed": item["seed"], "frame": item["frame"], "kind": qa["kind"], "question": qa["question"],
                          "reference": qa["answer"], "answer": answer.text,
                          "correct": is_correct(qa["kind"], answer.text, qa["answer"]),
                          "exact": answer.text.strip() == qa["answer"].strip()}
                if qa["kind"] == "action":
                    record["reason_correct"] = reason_key(answer.text) == reason_key(qa["answer"])
                records.append(record)
                f.write(json.dumps(record) + "\n")
            log(f"hvi: sample {n + 1}/{len(picks)}: {sum(r['correct'] for r in records)}/{len(records)} correct so far")
    metrics = summarize(records)
    metrics.update({"data": str(opts.data), "split": opts.split, "samples": int(len(picks)), "model_id": model.model_id,
                    "checkpoint": str(checkpoint) if checkpoint else None, "wall_s": round(time.perf_counter() - t0, 1)})
    (out / "hvi.json").write_text(json.dumps(metrics, indent=1))
    (out / "report.md").write_text(_markdown(metrics, records))
    for line in summary_lines(metrics):
        log(line)
    return metrics


def majority_accuracy(kind: str, references: List[str]) -> float:
    """Accuracy of always giving the most common reference fact (speed: the median speed),
    the floor a model that ignores the scene reaches."""
    keys = [answer_key(kind, text) for text in references]
    if kind == "speed":
        median = float(np.median(keys))
        return float(np.mean([abs(k - median) <= SPEED_TOLERANCE_MPS for k in keys]))
    values, counts = np.unique([repr(k) for k in keys], return_counts=True)
    return float(counts.max() / len(keys))


def summarize(records: List[dict]) -> dict:
    by_kind: Dict[str, dict] = {}
    for kind in sorted({r["kind"] for r in records}):
        rows = [r for r in records if r["kind"] == kind]
        by_kind[kind] = {"questions": len(rows), "accuracy": float(np.mean([r["correct"] for r in rows])),
                         "exact": float(np.mean([r["exact"] for r in rows])),
                         "majority_baseline": majority_accuracy(kind, [r["reference"] for r in rows])}
    reasons = [r["reason_correct"] for r in records if "reason_correct" in r]
    baseline = sum(m["majority_baseline"] * m["questions"] for m in by_kind.values()) / max(1, len(records))
    return {"questions": len(records),
            "accuracy": float(np.mean([r["correct"] for r in records])) if records else float("nan"),
            "majority_baseline": baseline,
            "exact": float(np.mean([r["exact"] for r in records])) if records else float("nan"),
            "action_reason_accuracy": float(np.mean(reasons)) if reasons else None, "by_kind": by_kind}


def summary_lines(metrics: dict) -> List[str]:
    lines = [f"hvi: {metrics['questions']} questions on {metrics['samples']} {metrics['split']} samples: accuracy "
             f"{metrics['accuracy']:.1%} (exact answers {metrics['exact']:.1%}; most-common-answer baseline "
             f"{metrics['majority_baseline']:.1%})"]
    for kind, m in metrics["by_kind"].items():
        lines.append(f"  {kind:7s} {m['accuracy']:6.1%} of {m['questions']} (baseline {m['majority_baseline']:.1%})")
    if metrics.get("action_reason_accuracy") is not None:
        lines.append(f"  action reason {metrics['action_reason_accuracy']:.1%}")
    return lines


def _markdown(metrics: dict, records: List[dict], examples: int = 2) -> str:
    text = ["# Human-vehicle interaction: templated questions on held-out episodes", "",
            f"Data `{metrics['data']}`, split `{metrics['split']}`, {metrics['samples']} samples, "
            f"{metrics['questions']} questions; model `{metrics['model_id']}`. Scoring: eval/hvi.py.", "",
            f"**Accuracy {metrics['accuracy']:.1%}** (exact answers {metrics['exact']:.1%}). Baseline: always the "
            f"most common reference fact of the kind (speed: the median), {metrics['majority_baseline']:.1%}.", "",
            "| kind | questions | accuracy | exact | most-common-answer baseline |", "| --- | --- | --- | --- | --- |"]
    for kind, m in metrics["by_kind"].items():
        text.append(f"| {kind} | {m['questions']} | {m['accuracy']:.1%} | {m['exact']:.1%} | "
                    f"{m['majority_baseline']:.1%} |")
    text += ["", "## Examples", ""]
    for kind in metrics["by_kind"]:
        for r in [r for r in records if r["kind"] == kind][:examples]:
            text.append(f"- seed {r['seed']} frame {r['frame']}, {r['question']!r}: answered {r['answer']!r}; "
                        f"reference {r['reference']!r} ({'correct' if r['correct'] else 'wrong'})")
    return "\n".join(text) + "\n"


__all__ = ["HviOptions", "answer_key", "is_correct", "majority_accuracy", "reason_key", "run_hvi", "summarize", "summary_lines"]
