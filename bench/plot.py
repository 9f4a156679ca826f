"""The accuracy-against-size plot of section 6 (matplotlib, drawn off screen)."""

from __future__ import annotations

from pathlib import Path


def plot_accuracy_vs_size(rows: list[dict], path: Path) -> str | None:
    """Save a scatter of validation accuracy against gzip size (log scale) to ``path``.

    Returns the path written, or ``None`` when matplotlib is not installed (the report says so).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for row in rows:
        kib = row["gzip_bytes"] / 1024
        color = "black" if row["baseline"] else ("tab:green" if row["accuracy_delta"] >= -0.01 else "tab:red")
        ax.scatter(kib, row["accuracy"] * 100, color=color, s=36, zorder=3)
        ax.annotate(row["model"], (kib, row["accuracy"] * 100), textcoords="offset points", xytext=(5, 3),
                    fontsize=8)
    baseline = next((r for r in rows if r["baseline"]), None)
    if baseline is not None:
        ax.axhline((baseline["accuracy"] - 0.01) * 100, color="grey", linestyle="--", linewidth=0.8,
                   label="baseline - 1 point")
        ax.axvline(baseline["gzip_bytes"] / 1024 / 10, color="grey", linestyle=":", linewidth=0.8,
                   label="10x smaller than baseline")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("gzip size (KiB, log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("digits: accuracy against size of each compressed TFLite model")
    ax.grid(True, which="both", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
