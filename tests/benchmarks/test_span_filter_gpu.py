"""benchmarks/span_filter_gpu.py: what travels to a GPU machine, and the run itself on the CPU."""

from __future__ import annotations

import gzip
import json

import pytest


@pytest.fixture
def gpu(benchmark_module):
    return benchmark_module("span_filter_gpu")


def test_every_carried_package_has_its_pinned_version(gpu):
    specs = [gpu.pinned(name) for name in (*gpu.CARRIED, *gpu.BUILT_HERE)]
    assert all("==" in spec for spec in specs)
    assert gpu.pinned("transformers").startswith("transformers==4.")
    with pytest.raises(SystemExit, match="not pinned"):
        gpu.pinned("no-such-package")


@pytest.mark.data
def test_the_bundle_holds_the_first_records_of_each_sampled_file(gpu, tmp_path, ner_data_dir):
    counts = gpu.bundle_data(tmp_path)

    dev = sorted((ner_data_dir / "dev").glob("*.jsonl.gz"))
    assert {f"dev/{p.name}" for p in dev} <= set(counts)
    for name, n in counts.items():
        with gzip.open(tmp_path / name, "rt", encoding="utf-8") as copied, gzip.open(ner_data_dir / name, "rt") as src:
            lines = copied.readlines()
            assert len(lines) == n and lines == [next(src) for _ in range(n)]
    assert counts["test/kind_it_wikinews.jsonl.gz"] == 30


@pytest.mark.data
def test_the_run_measures_every_mode_at_every_budget_on_the_cpu(gpu, tmp_path):
    out = tmp_path / "result.json"
    args = ["measure", "--device", "cpu", "--out", str(out), "--speed-sentences", "1", "--docs", "0"]
    gpu.main(
        [*args, "--batch-tokens", "512", "4096", "--predict-batch-sizes", "4", "--repeats", "1", "--skip-reference"]
    )

    result = json.loads(out.read_text())
    sentences = result["default"]["sentences"]
    assert "long_documents" not in result["default"]
    assert set(sentences["by_batch_tokens"]) == {"512", "4096"}
    small, large = sentences["by_batch_tokens"]["512"], sentences["by_batch_tokens"]["4096"]
    for mode in ("exact", "fast", "pruned", "pruned+fast"):
        assert small[mode]["words_per_s"] > 0
        assert small[mode]["batches"] >= large[mode]["batches"]  # a larger budget packs fewer batches
    assert small["pruned"]["share_scored"] < 1 == small["exact"]["share_scored"]
    assert list(sentences["predict"]) == ["4"]
    report = gpu.render(result)
    assert "| 4,096 |" in report and "SpanMarker's `predict`: batch 4" in report


def test_the_bundle_parts_join_into_the_tar_they_were_cut_from(gpu, tmp_path):
    import hashlib
    import io
    import tarfile

    staging = tmp_path / "staging"
    (staging / "wheels").mkdir(parents=True)
    payload = bytes(range(256)) * 14_000  # 3.4 MiB: three parts of 1 MiB and a rest
    (staging / "wheels" / "a.whl").write_bytes(payload)

    sha256, parts = gpu.split_bundle(staging, tmp_path / "out", part_mib=1)

    assert [p.name for p in parts] == [f"part-{i}" for i in range(1, len(parts) + 1)] and len(parts) == 4
    assert all((p / "bundle.tar.part").stat().st_size == 2**20 for p in parts[:-1])
    joined = b"".join((p / "bundle.tar.part").read_bytes() for p in parts)
    assert hashlib.sha256(joined).hexdigest() == sha256
    with tarfile.open(fileobj=io.BytesIO(joined)) as archive:
        assert archive.extractfile("./wheels/a.whl").read() == payload


def test_a_part_and_the_tracked_files_fit_one_device_call(gpu):
    assert 0 < gpu.tracked_mib() < gpu.CALL_LIMIT_MIB - 8


def test_the_bundle_goes_only_into_an_ignored_folder_of_the_repository(gpu, tmp_path, capsys):
    for out in (tmp_path / "bundle", gpu.ROOT / "docs"):
        with pytest.raises(SystemExit):
            gpu.main(["bundle", "--no-wheels", "--out", str(out)])
        assert "--out must be a git-ignored folder of the repository" in capsys.readouterr().err
