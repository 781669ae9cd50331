"""Progress of long work off a terminal: one summary line per stage on stderr (counted steps
with the latest note; a failure says how far it got), and the tally behind tune's note."""

from __future__ import annotations

import math
import re

import pytest

from forex_diffusion.cli.progress import stage, steps


def test_steps_write_one_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    with steps("tuning 3 baselines", 3, enabled=False) as advance:
        advance("random_walk", "random_walk 0.0 s")
        advance("ewma", None)  # no new note: the last one stays
        advance("garch_t", "random_walk 0.0 s, ewma 0.1 s, garch_t 2.0 s")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r"tuning 3 baselines: 3/3 done in \d+\.\d s; random_walk 0\.0 s, ewma 0\.1 s, "
        r"garch_t 2\.0 s",
        lines[0],
    ), lines[0]


def test_steps_without_notes_and_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    with steps("trials", 2, enabled=False) as advance:
        advance("trial a")
        advance("trial b")
    assert re.fullmatch(r"trials: 2/2 done in \d+\.\d s\n", capsys.readouterr().err)
    with pytest.raises(RuntimeError), steps("trials", 4, enabled=False) as advance:
        advance("trial a", "best val_crps 0.5 (trial a)")
        raise RuntimeError("worker lost")
    assert re.fullmatch(
        r"trials: failed after \d+\.\d s \(1/4 done\); best val_crps 0\.5 \(trial a\)\n",
        capsys.readouterr().err,
    )


def test_a_live_bar_still_ends_with_the_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    with steps("tuning 1 baselines", 1, enabled=True) as advance:
        advance("ewma", "ewma 0.1 s")
    assert re.search(
        r"^tuning 1 baselines: 1/1 done in \d+\.\d s; ewma 0\.1 s$",
        capsys.readouterr().err,
        re.MULTILINE,
    )


def test_stage_line_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    with stage("importing 1 file(s)", enabled=False):
        pass
    assert re.fullmatch(r"importing 1 file\(s\): done in \d+\.\d s\n", capsys.readouterr().err)


def test_trial_tally_keeps_the_lowest_final_val_crps() -> None:
    pytest.importorskip("ray")
    from forex_diffusion.scale.tune import METRIC, TrialTally

    tally = TrialTally()
    assert tally.note() == "no val_crps reported yet"
    assert tally.finished("t1", {}) == "no val_crps reported yet"  # failed before validating
    assert tally.finished("t2", {METRIC: 0.25, "epoch": 2}) == "best val_crps 0.25 (trial t2)"
    assert tally.finished("t3", {METRIC: 0.5}) == "best val_crps 0.25 (trial t2)"
    assert tally.finished("t4", {METRIC: math.nan}) == "best val_crps 0.25 (trial t2)"
    assert tally.finished("t5", {METRIC: 0.125}) == "best val_crps 0.125 (trial t5)"
    assert (tally.best, tally.best_trial) == (0.125, "t5")
