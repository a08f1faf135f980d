"""The model card written next to a trained model: what it is, how it was made, how good."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["render_training_card"]


def render_training_card(
    *,
    config: dict[str, Any],
    result: dict[str, Any],
    dev_history: list[dict[str, Any]],
    coverage: dict[str, int],
    label_counts: dict[str, int],
) -> str:
    """Markdown for a trained model's ``README.md``."""
    lines = [
        "# nerflow SpanMarker model",
        "",
        f"Base encoder: `{config['encoder']}`. Labels: {', '.join(config['labels'])}. "
        f"Windows of {config['model_max_length']} tokens, entities up to {config['entity_max_length']} words.",
        "",
        "## Training",
        "",
        f"- Method: {config['method']}"
        + (f" (rank {config['lora_rank']}, alpha {config['lora_alpha']})" if config["method"] == "lora" else ""),
        f"- Steps: {result['steps']} (exported: step {result['selected_step']}), "
        f"{result['train_seconds'] / 3600:.2f} h on this machine",
        f"- Learning rate {config['learning_rate']} (head {config['head_learning_rate']}), "
        f"{config['batch_tokens']} encoder tokens per step, negative span rate {config['negative_rate']}, seed {config['seed']}",
        f"- Gold entity spans in the training windows: {json.dumps(label_counts, sort_keys=True)}",
        f"- Entities that could not be learned: {json.dumps(coverage, sort_keys=True)}",
        "",
        "Training data:",
        "",
    ]
    for src in config["train"]:
        cap = f" (sample of {src['max_records']})" if src.get("max_records") else ""
        lines.append(f"- `{src['uri']}`{cap}")
    if dev_history:
        lines += [
            "",
            "## Dev evaluation (strict micro F1, through the engine)",
            "",
            "| step | pooled | " + " | ".join(sorted(dev_history[-1]["per_set"])) + " |",
            "|---:|---:|" + "---:|" * len(dev_history[-1]["per_set"]),
        ]
        for h in dev_history:
            lines.append(
                f"| {h['step']} | {h['micro_f1']:.4f} | "
                + " | ".join(f"{h['per_set'][k]:.4f}" for k in sorted(h["per_set"]))
                + " |"
            )
    lines += ["", "## Configuration", "", "```json", json.dumps(config, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def write_card(directory: Path, text: str) -> Path:
    path = Path(directory) / "README.md"
    path.write_text(text)
    return path
