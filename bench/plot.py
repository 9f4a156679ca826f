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
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    placed: list[tuple[float, float]] = []
    stacked = 0  # labels moved to a column because their point sits among others
    for row in sorted(rows, key=lambda r: (-r["accuracy"], r["gzip_bytes"])):
        kib, accuracy = row["gzip_bytes"] / 1024, row["accuracy"] * 100
        color = "black" if row["baseline"] else ("tab:green" if row["accuracy_delta"] >= -0.01 else "tab:red")
        ax.scatter(kib, accuracy, color=color, s=36, zorder=3)
        crowded = any(0.7 < kib / x < 1.4 and abs(accuracy - y) < 0.4 for x, y in placed)
        placed.append((kib, accuracy))
        if crowded:
            # NOTE: a column of labels to the right of the crowd, each joined to its point by a line.
            ax.annotate(row["model"], (kib, accuracy), xytext=(kib * 1.5, accuracy - 0.45 * (stacked + 1)),
                        fontsize=8, va="center", arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5})
            stacked += 1
        else:
            ax.annotate(row["model"], (kib, accuracy), textcoords="offset points", xytext=(5, 3), fontsize=8)
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
