"""`student_probe`: does the raised corpus raise a model? (group `evaluation`, downstream of the
published corpus; it never blocks publication: nothing waits on it and it has no checks)."""

import base64
from importlib import resources
from pathlib import Path

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from raising_dagster.config import sha256_hex
from raising_dagster.prompts import load_prompt
from raising_dagster.resources import RaisingResource

EVALUATION_GROUP = "evaluation"
PROBE_DIR = "student_probe"


def probe_code_version() -> str:
    """A code version from the probe's shipped prompts and the judge prompt."""
    folder = resources.files("raising_dagster") / "probe" / "prompts"
    texts = sorted(f.read_text("utf-8") for f in folder.iterdir() if f.name.endswith(".yaml"))
    return sha256_hex(":".join([*texts, load_prompt("probe/judge.v1").sha]))[:16]


@asset(
    group_name=EVALUATION_GROUP,
    deps=["training_ready_corpus"],
    code_version=probe_code_version(),
    kinds={"pytorch", "parquet"},
)
def student_probe(context: AssetExecutionContext, raising: RaisingResource) -> MaterializeResult:
    """Small students trained from scratch on the raw and the raised corpus (in order and
    shuffled), probed for persona, values, knowledge kept and the effect of order."""
    from raising_dagster.probe.data import ProbeInputError
    from raising_dagster.probe.report import markdown_table, order_markdown
    from raising_dagster.probe.run import PROBE_FILE, ProbeUnavailable, run_probe

    store = raising.layout.root
    out = store / PROBE_DIR
    try:
        report = run_probe(raising.settings, store, out, progress=context.log.info)
    except (ProbeInputError, ProbeUnavailable) as exc:
        raise Failure(str(exc)) from exc
    arms = report["arms"]
    return MaterializeResult(
        metadata={
            "figures": MetadataValue.md(markdown_table(report)),
            "order": MetadataValue.md(order_markdown(report)),
            **{
                f"{arm}_{key}": MetadataValue.float(float(arms[arm][key]))
                for arm in arms
                for key in ("first_person_share", "value_share", "heldout_perplexity")
                if arms[arm][key] is not None
            },
            "judge": MetadataValue.json(
                {k: v for k, v in report["judge"].items() if k != "patterns"}
            ),
            "data": MetadataValue.json(report["data"]),
            "settings": MetadataValue.json(report["settings"]),
            **{
                f"plot_{Path(p).stem}": MetadataValue.md(_png_markdown(out / p))
                for p in report["plots"]
            },
            "seconds": report["seconds"],
            "probe_json": MetadataValue.path(str(out / PROBE_FILE)),
        }
    )


def _png_markdown(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"![{path.stem}](data:image/png;base64,{encoded})"
