"""Model-card rows: one table row per (model, quality, beta) with the training recipe beside the
measurements, and the edit that replaces a model's rows in a card file."""

from __future__ import annotations

from pathlib import Path

CARD_HEADER = "| model | data | crop | stage 1 / 2 steps | train h | quality | beta | Kodak bpp | PSNR | MS-SSIM | LPIPS |"


def card_rows(name: str, training: dict, summary: list[dict]) -> list[str]:
    """Model-card table rows (one per beta) for docs/models.md."""
    # a model continued from others (training["lineage"]) counts the steps and hours of the chain
    steps = (f"{training.get('total_stage1_steps', training.get('stage1_steps'))} / "
             f"{training.get('total_stage2_steps', training.get('stage2_steps'))}")
    hours = training.get("total_train_hours", training.get("train_hours"))
    rows = []
    for s in summary:
        if s["model"] != name:
            continue
        rows.append(
            f"| {name} | {Path(training.get('train_dir', '?')).name} ({training.get('images', '?')} photos) "
            f"| {training.get('crop')} | {steps} | {hours} | {s['quality']:g} | {s['beta']:g} | {s['bpp']:.3f} "
            f"| {s['psnr']:.2f} "
            f"| {s['ms_ssim']:.4f} | {s['lpips']:.4f} |"
        )
    return rows


def update_model_card(card: Path, name: str, rows: list[str]) -> None:
    """Replaces the rows of `name` in the measurements table of the model card ``card`` (a
    Markdown file, e.g. docs/models.md; the CLI names it, library code never picks a path)."""
    lines = card.read_text().splitlines() if card.is_file() else []
    if CARD_HEADER not in lines:
        lines += ["", CARD_HEADER, "|" + "---|" * (CARD_HEADER.count("|") - 1)]
    kept = [l for l in lines if not l.startswith(f"| {name} |")]
    at = kept.index(CARD_HEADER) + 2
    kept[at:at] = rows
    card.write_text("\n".join(kept) + "\n")
