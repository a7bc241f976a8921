"""The sweep summary labels every FID with the number of samples it was measured on."""

import csv
import json

import yaml

from ganrun.sweep.summary import write_summary


def write_job(sweep, name, final_fid, final_n, best_fid, best_step, best_n, ema_fid=None):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"loss={name.split('=')[1]}"]))
    evaluations = [{"step": 200, "generator": "raw", "section": "final", "protocol": {"n_generated": final_n}},
                   {"step": best_step, "generator": "ema", "section": "metrics", "protocol": {"n_generated": 7}},
                   {"step": best_step, "generator": "raw", "section": "metrics", "protocol": {"n_generated": best_n}}]
    (job / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evaluations))
    (job / "metrics.json").write_text(json.dumps({
        "step": 200, "losses": {"loss/D": 1.0, "loss/G": 2.0}, "best": {"FID": best_fid, "step": best_step},
        "final": {"extractor": "offline_classifier", "metrics": {"FID": final_fid},
                  "protocol": {"n_generated": final_n}},
        "final_ema": None if ema_fid is None else {"extractor": "offline_classifier", "metrics": {"FID": ema_fid},
                                                   "protocol": {"n_generated": final_n}}}))


def test_summary_labels_fid_with_its_sample_counts(tmp_path):
    write_job(tmp_path, "0_loss=ns", 12.0, 10000, 15.0, 100, 1000)
    write_job(tmp_path, "1_loss=hinge", 9.0, 10000, 11.0, 200, 1000)
    _, md_path, table = write_summary(tmp_path)
    header = table.splitlines()[0]
    assert "| FID@10000 |" in header and "| best_FID@1000 |" in header and "samples" not in header
    assert table.splitlines()[2].startswith("| 1 | loss=hinge | 9 |")  # best final FID first
    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["FID"], r["final_samples"], r["best_FID"], r["best_samples"]) for r in rows] == [
        ("9.0", "10000", "11.0", "1000"), ("12.0", "10000", "15.0", "1000")]
    assert "compare like with like" in md_path.read_text()


def test_differing_counts_keep_their_own_columns(tmp_path):
    write_job(tmp_path, "0_loss=ns", 12.0, 50000, 15.0, 100, 1000)
    write_job(tmp_path, "1_loss=hinge", 9.0, 10000, None, None, None)
    table = write_summary(tmp_path)[2]
    header = [h.strip() for h in table.splitlines()[0].strip("|").split("|")]
    assert "FID" in header and "final_samples" in header and "best_FID@1000" in header
    assert "best_samples" not in header


def test_a_summary_interrupted_while_written_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    write_job(tmp_path, "0_seed=0", 10.0, 5000, 9.0, 500, 1000)
    write_summary(tmp_path)
    before = {name: (tmp_path / name).read_text() for name in ("summary.csv", "summary.md")}
    write_job(tmp_path, "1_seed=1", 12.0, 5000, 11.0, 500, 1000)

    def killed(self, rows):
        raise KeyboardInterrupt  # a Ctrl-C (or a kill) half-way through the rows
    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    try:
        write_summary(tmp_path)
    except KeyboardInterrupt:
        pass
    assert {name: (tmp_path / name).read_text() for name in before} == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_the_ema_generators_final_metrics_have_their_columns(tmp_path):
    write_job(tmp_path, "0_loss=ns", 12.0, 10000, 15.0, 100, 1000, ema_fid=8.0)
    write_job(tmp_path, "1_loss=hinge", 9.0, 10000, 11.0, 200, 1000, ema_fid=10.0)
    table = write_summary(tmp_path)[2]
    header = [h.strip() for h in table.splitlines()[0].strip("|").split("|")]
    assert header[:5] == ["job", "overrides", "FID@10000", "FID_ema@10000", "best_FID@1000"]
    assert [line.split("|")[4].strip() for line in table.splitlines()[2:]] == ["10", "8"]  # raw G's FID ranks
    with open(tmp_path / "summary.csv") as f:
        assert [(r["FID"], r["FID_ema"]) for r in csv.DictReader(f)] == [("9.0", "10.0"), ("12.0", "8.0")]
