"""The claims framework: statistics of the three rules, results on disk, resume, verdicts.

Statistical tests use fixed seeds (so they are deterministic) and state, next to each
assertion, the probability that it would fail for a correct implementation with a fresh seed.
"""

from __future__ import annotations

import doctest
import json
import os
import time

import numpy as np
import pytest
from scipy import stats as sps

from theorylab.errors import TheorylabError
from verify.claims import CLAIMS, Claim, ClaimContext, ClaimResult, register_claim, stats
from verify.report import (
    config_hash,
    format_results,
    load_result,
    load_results,
    result_path,
    run_claims,
    save_result,
)

# ---------------------------------------------------------------------------------------------
# statistics


def test_stats_docstring_examples_run():
    failures, _ = doctest.testmod(stats, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_mean_ci_matches_scipy_t_interval():
    rng = np.random.default_rng(1)
    x = rng.exponential(size=(17, 3))
    ci = stats.mean_ci(x, level=0.9)
    for j in range(3):
        lo, hi = sps.t.interval(0.9, 16, loc=x[:, j].mean(), scale=sps.sem(x[:, j]))
        assert ci.lo[j] == pytest.approx(lo, rel=1e-12)
        assert ci.hi[j] == pytest.approx(hi, rel=1e-12)
    upper = stats.mean_ci(x, level=0.9, sided="upper")
    assert np.all(upper.lo == -np.inf)
    q = sps.t.ppf(0.9, 16)
    assert upper.hi == pytest.approx(x.mean(0) + q * x.std(0, ddof=1) / np.sqrt(17))


def test_mean_ci_coverage_gaussian():
    # 4000 independent intervals (R = 12 Gaussian replicas each) at level 95%: the number that
    # cover the true mean is Binomial(4000, 0.95), sd 13.8; the +-5 sd band below fails with
    # probability < 1e-6 for a correct interval.
    rng = np.random.default_rng(2024)
    x = rng.normal(3.0, 2.0, size=(12, 4000))
    ci = stats.mean_ci(x, level=0.95)
    covered = int(np.sum((ci.lo <= 3.0) & (3.0 <= ci.hi)))
    assert abs(covered - 3800) <= 5 * 13.8


def test_mean_ci_coverage_squared_errors():
    # The quantities claims average are squared norms (chi-square, skewed). With R = 64
    # replicas of a chi-square(3) variable, the 99% t-interval must still cover the mean in
    # about 99% of 3000 trials: sd of the count is 5.4, and we allow coverage >= 98% (a
    # deficit of 30 = 5.5 sd from 99%: false-failure probability < 1e-7 for a 99% interval).
    rng = np.random.default_rng(7)
    x = np.sum(rng.normal(size=(64, 3000, 3)) ** 2, axis=2)
    ci = stats.mean_ci(x, level=0.99)
    covered = int(np.sum((ci.lo <= 3.0) & (3.0 <= ci.hi)))
    assert covered >= 0.98 * 3000


def test_bonferroni_level():
    assert stats.bonferroni_level(0.99, 1) == pytest.approx(0.99)
    assert stats.bonferroni_level(0.99, 20) == pytest.approx(0.9995)
    with pytest.raises(TheorylabError):
        stats.bonferroni_level(0.99, 0)
    with pytest.raises(TheorylabError):
        stats.bonferroni_level(1.0, 3)


def _random_walks(rng, trials, R, m):
    # strongly correlated checkpoints: cumulative sums; the mean at checkpoint t is 0
    return np.cumsum(rng.normal(size=(trials, R, m)), axis=2)


def test_exact_rule_family_wise_false_failure_at_most_one_minus_level():
    # A correct prediction (0 at every one of m = 10 correlated checkpoints), 1000 independent
    # trials at level 99%: Bonferroni guarantees a failure probability <= 1% per trial, so the
    # number of failures is stochastically below Binomial(1000, 0.01) (mean 10, sd 3.1);
    # P(Binomial > 30) < 1e-7.
    rng = np.random.default_rng(11)
    x = _random_walks(rng, 1000, 40, 10)
    fails = sum(not stats.exact_rule(np.zeros(10), x[i], level=0.99).passed for i in range(1000))
    assert fails <= 30


def test_exact_rule_detects_a_wrong_prediction():
    # prediction off by 1 at the last checkpoint, where the standard error is sqrt(10/200)=0.22
    # (4.5 standard errors); the Bonferroni t-quantile is 3.3, so it fails unless the sample
    # mean lands > 1.2 standard errors towards it (probability ~ 0.1; fixed seed).
    rng = np.random.default_rng(5)
    x = _random_walks(rng, 1, 200, 10)[0]
    wrong = np.zeros(10)
    wrong[-1] = 1.0
    out = stats.exact_rule(wrong, x)
    assert not out.passed
    assert out.predicted == 1.0
    assert "1/10 outside" in out.detail
    assert stats.exact_rule(np.zeros(10), x).passed


def test_exact_rule_deterministic_needs_tolerance():
    pred = np.array([1.0, 0.5, 0.25])
    measured = pred * (1 + 1e-14)
    assert not stats.exact_rule(pred, measured[None, :]).passed
    out = stats.exact_rule(pred, measured[None, :], rtol=1e-10)
    assert out.passed
    assert out.interval[0] < out.predicted < out.interval[1]


def test_bound_rule_pass_fail_and_looseness():
    rng = np.random.default_rng(3)
    x = rng.normal([1.0, 2.0, 4.0], 0.05, size=(100, 3))
    out = stats.bound_rule([4.0, 5.0, 12.0], x)
    assert out.passed
    # tightest ratio is 5/2 = 2.5 at checkpoint 1 (up to the sampling error of the mean)
    assert out.predicted == 5.0
    assert out.detail.startswith("bound/measured = 2.5")
    # a bound equal to the true mean is not certified (one-sided 99%: passes w.p. ~1%)
    assert not stats.bound_rule([1.0, 2.0, 4.0], x).passed
    # a bound below the measurement fails, and the failing checkpoint is reported
    low = stats.bound_rule([4.0, 1.5, 12.0], x)
    assert not low.passed and low.predicted == 1.5


def test_loglog_fit_exact_power_law_and_two_regressors():
    n = np.array([2.0, 4.0, 8.0, 16.0, 2.0, 4.0, 8.0, 16.0])
    gamma = np.array([0.1, 0.1, 0.1, 0.1, 0.05, 0.02, 0.01, 0.2])
    y = 3.0 * gamma / n
    fit = stats.loglog_fit(np.column_stack([n, gamma]), y)
    assert fit.slopes == pytest.approx([-1.0, 1.0], abs=1e-12)
    assert fit.intercept == pytest.approx(np.log(3.0))
    assert fit.predict(np.array([[4.0, 0.1]])) == pytest.approx([0.075])


def test_loglog_fit_interval_covers_true_slope():
    # 500 noisy sweeps of y = x^-0.5 * exp(noise) with 8 points; the 95% t-interval of the
    # slope covers -0.5 in Binomial(500, 0.95) trials (sd 4.9): allow >= 450 (5 sd,
    # false-failure probability < 1e-6).
    rng = np.random.default_rng(8)
    x = np.geomspace(1, 100, 8)
    covered = 0
    for _ in range(500):
        y = x**-0.5 * np.exp(rng.normal(0, 0.1, size=8))
        fit = stats.loglog_fit(x, y, level=0.95)
        covered += fit.lo[0] <= -0.5 <= fit.hi[0]
    assert covered >= 450


def test_shape_rule():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    y = 2.0 / x**1.05
    assert stats.shape_rule(x, y, -1.0, tol=0.1).passed
    out = stats.shape_rule(x, y, -1.0, tol=0.02, names=["n"])
    assert not out.passed
    assert out.measured == pytest.approx(-1.05)
    assert "n: slope -1.050" in out.detail


def test_claim_seeds_of_distinct_seeds_and_runs_never_collide():
    from verify.claims.common import claim_seeds, derive_seed

    seen = {}
    for seed in range(6):
        seeds = claim_seeds(ClaimContext(world_size=2, seed=seed), "compress")
        assert seeds == claim_seeds(ClaimContext(world_size=2, seed=seed), "compress")
        for name, value in seeds.items():
            for run in range(6):  # the per-run seeds of a sweep (run i of --seed s)
                seen.setdefault(derive_seed(value, run), []).append((seed, name, run))
            seen.setdefault(value, []).append((seed, name))
    assert all(len(v) == 1 for v in seen.values())  # with seed + i, (s, 1) met (s + 1, 0)
    assert all(0 <= v < 2**63 for v in seen)


def test_optimal_weights_ratio_check_coverage_and_independence_from_the_curves():
    from verify.claims.design import _ratio_check

    # coverage: paired, correlated chi-square(8)-like replicas (a consensus distance sums several
    # squared Gaussian terms) with known ratio of means 1.5; the 99% Fieller interval must cover
    # it in about 99% of 400 seeded trials. Binomial: P(covered < 388 | p = 0.99) = 2.5e-4 (the
    # false-failure probability; deterministic with these seeds)
    covered = 0
    for t in range(400):
        rng = np.random.default_rng(t)
        b = rng.chisquare(8, 128) / 8 + 0.5
        a = 1.5 * b + 0.3 * (rng.chisquare(8, 128) / 8 - 1.0)
        covered += _ratio_check(a, b, 1.5, 0.99).passed
    assert covered >= 388
    # a ratio the two per-curve CIs cannot see: a = b exactly, so each curve's mean lies well
    # inside its own interval around 1.01 m resp. m / 1.01, but the measured ratio is 1 +- 0
    b = np.random.default_rng(0).standard_normal(128) ** 2
    m = b.mean()
    assert stats.exact_rule([1.01 * m], b[:, None]).passed
    assert stats.exact_rule([m / 1.01], b[:, None]).passed
    out = _ratio_check(b, b, 1.01**2, 0.99)
    assert not out.passed and out.measured == pytest.approx(1.0)
    assert not _ratio_check(np.r_[b[:-1], np.nan], b, 1.0201, 0.99).passed


def test_diverged_measurement_is_a_failed_prediction_not_an_error():
    # a run that diverges where the theory predicts convergence fails the rule (no raise),
    # naming the first checkpoint where a replica is NaN or inf
    x = np.ones((5, 4))
    x[2, 2], x[0, 3] = np.nan, np.inf
    for out in (stats.exact_rule(np.ones(4), x), stats.bound_rule(np.full(4, 2.0), x)):
        assert not out.passed
        assert "measured curve diverged at checkpoint 2" in out.detail
        assert "1/5 replicas" in out.detail
    out = stats.shape_rule([1.0, 2.0, 4.0], [1.0, np.nan, 0.25], -1.0, tol=0.1)
    assert not out.passed and "diverged at sweep point 1" in out.detail
    with pytest.raises(TheorylabError, match="NaN or inf"):
        stats.mean_ci([[np.nan]])  # the plain statistic still refuses non-finite input


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.exact_rule([1.0, 2.0], np.ones((3, 3))),
        lambda: stats.bound_rule([1.0], np.ones((2, 2))),
        lambda: stats.loglog_fit([1.0, -2.0, 3.0], [1.0, 2.0, 3.0]),
        lambda: stats.loglog_fit([1.0], [1.0]),
        lambda: stats.shape_rule([1, 2, 3], [1, 2, 3], [1.0, 2.0], tol=0.1),
        lambda: stats.shape_rule([1, 2, 3], [1, 2, 3], 1.0, tol=0.0),
        lambda: stats.mean_ci(np.ones((2, 2)), sided="lower"),
    ],
)
def test_stats_reject_bad_input(call):
    with pytest.raises(TheorylabError):
        call()


# ---------------------------------------------------------------------------------------------
# framework with toy claims


class _Toy(Claim):
    kind = "exact"
    issue = "Foundation"
    description = "toy claim for the framework tests"
    calls = 0

    def __init__(self, behaviour="pass"):
        self.behaviour = behaviour

    def config(self, budget):
        return {"R": 30 if budget == "quick" else 300, "m": 4}

    def run(self, ctx):
        type(self).calls += 1
        if self.behaviour == "error":
            raise RuntimeError("toy failure")
        if self.behaviour == "interrupt":
            raise KeyboardInterrupt
        cfg = self.full_config(ctx)
        rng = np.random.default_rng(cfg["seed"])
        truth = np.array([1.0, 0.5, 0.25, 0.125])
        x = rng.normal(truth, 0.01, size=(cfg["R"], cfg["m"]))
        if self.behaviour == "diverge":
            x[:, 2:] = np.inf  # the run blew up from checkpoint 2 on
        pred = 2 * truth if self.behaviour == "fail" else truth
        out = stats.exact_rule(pred, x)
        return self.make_result(
            {"curve": out},
            series={"x": [0, 1, 2, 3], "predicted": pred.tolist(), "mean": out.curves["mean"]},
            seeds=[cfg["seed"]],
            bytes_sent=123,
        )


def _computes_forever(rank, world_size):
    time.sleep(60)  # pure computation: no communication timeout can see it


class _HangingToy(_Toy):
    name = "toy_hang"

    def run(self, ctx):
        ctx.run_on_ranks(_computes_forever)
        raise AssertionError("unreachable: the run timeout must stop the ranks")


@pytest.fixture
def toys(monkeypatch):
    """Register toy claims (removed again after the test)."""
    made = {}
    for behaviour in ("pass", "fail", "error", "interrupt", "diverge"):
        cls = type(f"Toy_{behaviour}", (_Toy,), {"name": f"toy_{behaviour}", "calls": 0})
        monkeypatch.setitem(CLAIMS, cls.name, cls(behaviour))
        made[behaviour] = cls
    return made


def test_claim_result_json_round_trip():
    r = ClaimResult(
        claim="c",
        kind="bound",
        verdict="fail",
        predicted="slope -1",
        measured=float("nan"),
        interval=(float("-inf"), 2.5),
        checks=[{"name": "a", "passed": False, "interval": [float("-inf"), 1.0]}],
        series={"panel": {"x": [1, 2], "y": [0.5, float("inf")]}},
        config={"n": 4},
        seeds=[1, 2],
    )
    text = json.dumps(r.to_dict())  # strict JSON: no NaN/Infinity literals
    assert "NaN" not in text and "Infinity" not in text
    back = ClaimResult.from_dict(json.loads(text))
    assert back.interval == (float("-inf"), 2.5)
    assert np.isnan(back.measured)
    assert back.series["panel"]["y"][1] == float("inf")
    assert back.checks[0]["interval"][0] == float("-inf")
    assert back.predicted == "slope -1"
    assert {k: v for k, v in back.to_dict().items()} == r.to_dict()
    with pytest.raises(TheorylabError):
        ClaimResult(claim="c", kind="exact", verdict="maybe")


def test_register_claim_validates(monkeypatch):
    monkeypatch.setattr("verify.claims.base.CLAIMS", dict(CLAIMS))

    class NoKind(_Toy):
        name = "no_kind"
        kind = "guess"

    class BadName(_Toy):
        name = "bad name"

    with pytest.raises(TheorylabError, match="kind"):
        register_claim(NoKind)
    with pytest.raises(TheorylabError, match="snake_case"):
        register_claim(BadName)
    with pytest.raises(TypeError):
        register_claim(object)

    class First(_Toy):
        name = "dup_claim"

    class Second(_Toy):
        name = "dup_claim"

    register_claim(First)
    with pytest.raises(TheorylabError, match="already registered"):
        register_claim(Second)


def test_context_validates_and_merges_settings():
    with pytest.raises(TheorylabError):
        ClaimContext("medium")
    with pytest.raises(TheorylabError):
        ClaimContext(backend="mpi")
    with pytest.raises(TheorylabError, match="nccl"):
        ClaimContext(backend="nccl", device="cpu")
    with pytest.raises(TheorylabError):
        ClaimContext(world_size=1)
    ctx = ClaimContext("full", world_size=3, seed=9, replicas=7)
    cfg = _Toy().full_config(ctx)
    assert cfg["R"] == 300 and cfg["replicas"] == 7 and cfg["world_size"] == 3
    assert cfg["seed"] == 9 and cfg["budget"] == "full"
    assert not ctx.pool_started  # the pool is started only when a claim asks for it


def test_context_refuses_cuda_without_cuda(monkeypatch):
    # fail fast with one clear error, not one 'error' result per claim after starting workers
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TheorylabError, match="CUDA is not available"):
        ClaimContext(device="cuda")
    with pytest.raises(TheorylabError, match="CUDA is not available"):
        ClaimContext(backend="nccl", device="cuda")


def test_run_claims_verdicts_files_and_resume(tmp_path, toys):
    ctx = ClaimContext(world_size=2)
    names = ["toy_pass", "toy_fail", "toy_error"]
    results = run_claims(names, ctx, tmp_path, figures=False)
    assert [r.verdict for r in results] == ["pass", "fail", "error"]
    err = results[2]
    assert "RuntimeError: toy failure" in err.detail
    assert "raise RuntimeError" in err.traceback
    ok = results[0]
    assert ok.bytes_sent == 123 and ok.seeds == [0] and ok.world_size == 2
    assert ok.backend == "gloo" and ok.device == "cpu" and ok.timestamp
    assert set(ok.versions) >= {"python", "torch", "numpy", "theorylab"}
    for r in results:
        path = result_path(tmp_path, r.claim, r.config)
        assert path.exists()
        assert load_result(path).to_dict() == r.to_dict()
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind

    # resume: pass and fail are loaded, not recomputed; an error is retried
    again = run_claims(names, ctx, tmp_path, figures=False)
    assert [toys[b].calls for b in ("pass", "fail", "error")] == [1, 1, 2]
    assert again[0].to_dict() == results[0].to_dict()
    # --force recomputes; a different configuration is a different file
    run_claims(["toy_pass"], ctx, tmp_path, figures=False, force=True)
    assert toys["pass"].calls == 2
    run_claims(["toy_pass"], ClaimContext(world_size=2, seed=1), tmp_path, figures=False)
    assert toys["pass"].calls == 3
    assert len(list(tmp_path.glob("toy_pass-*.json"))) == 2
    assert len(load_results(tmp_path)) == 4

    table = format_results(results)
    assert table.splitlines()[0].split() == [
        "claim", "kind", "predicted", "measured", "interval", "verdict", "wall_s"
    ]  # fmt: skip
    assert "FAIL" in table and "ERROR" in table and "toy_error: RuntimeError" in table


def test_diverging_claim_is_a_fail_verdict_not_an_error(tmp_path, toys):
    (result,) = run_claims(["toy_diverge"], ClaimContext(world_size=2), tmp_path, figures=False)
    assert result.verdict == "fail"
    assert "measured curve diverged at checkpoint 2" in result.detail
    assert result.traceback is None


def test_claim_stuck_in_computation_is_stopped_by_the_run_timeout(tmp_path, monkeypatch):
    monkeypatch.setitem(CLAIMS, "toy_hang", _HangingToy())
    with pytest.raises(TheorylabError, match="run_timeout_s"):
        ClaimContext(run_timeout_s=0)
    with ClaimContext(world_size=2, run_timeout_s=1.0) as ctx:
        assert ctx.pool is not None  # start-up (seconds under load) is not timed
        start = time.monotonic()
        (result,) = run_claims(["toy_hang"], ctx, tmp_path, figures=False)
        elapsed = time.monotonic() - start
    assert elapsed < 10  # the 1 s limit plus stopping and restarting the stuck ranks
    assert result.verdict == "error"
    assert "did not finish within 1.0 s" in result.detail


def test_diverging_choco_run_is_a_fail_verdict(tmp_path, monkeypatch):
    # a real claim whose measured consensus blows up (the simulator is replaced by a diverging
    # curve): the rate fit must not raise, the claim fails naming the checkpoint
    from types import SimpleNamespace

    def diverging(ctx, algorithm, oracle, schedule, x0, steps, *, seed, record=None, **kw):
        cons = np.exp(0.5 * np.asarray(record, float))[:, None]
        cons[len(record) // 2 :] = np.inf
        return SimpleNamespace(consensus=cons, steps=list(record), bytes_sent=0)

    monkeypatch.setattr("verify.claims.compression.run", diverging)  # the shared run loop
    (result,) = run_claims(
        ["choco_consensus_rate"], ClaimContext(world_size=2), tmp_path, figures=False
    )
    assert result.verdict == "fail"
    assert "measured curve diverged at checkpoint" in result.detail


def test_run_of_all_claims_reports_a_claim_module_that_failed_to_import(
    tmp_path, toys, monkeypatch
):
    # running "all claims" must not pass while a claim module silently failed to import
    import verify.claims

    monkeypatch.setattr("verify.report.CLAIMS", {"toy_pass": CLAIMS["toy_pass"]})
    monkeypatch.setitem(verify.claims.IMPORT_ERRORS, "broken", "ImportError: no module x")
    results = run_claims(None, ClaimContext(world_size=2), tmp_path, figures=False)
    assert [r.verdict for r in results] == ["error", "pass"]
    assert "verify.claims.broken" in results[0].detail and "no module x" in results[0].detail
    assert len(list(tmp_path.glob("*.json"))) == 1  # only real claims are saved
    named = run_claims(["toy_pass"], ClaimContext(world_size=2), tmp_path, figures=False)
    assert [r.verdict for r in named] == ["pass"]  # an explicit list is not affected


def test_killed_run_keeps_finished_results(tmp_path, toys):
    ctx = ClaimContext(world_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_claims(["toy_pass", "toy_interrupt"], ctx, tmp_path, figures=False)
    assert len(list(tmp_path.glob("toy_pass-*.json"))) == 1
    assert not list(tmp_path.glob("toy_interrupt-*.json"))
    run_claims(["toy_pass"], ctx, tmp_path, figures=False)
    assert toys["pass"].calls == 1  # resumed


def test_non_result_json_is_skipped_not_fatal(tmp_path, toys):
    # a JSON file that is not an object (a list, a number) is "not a result": load_results skips
    # it and a resumed run recomputes over it, instead of raising AttributeError
    with pytest.raises(TypeError, match="JSON object"):
        ClaimResult.from_dict([1, 2])
    (tmp_path / "other.json").write_text("[1, 2]")
    (tmp_path / "number.json").write_text("3")
    assert load_results(tmp_path) == []
    ctx = ClaimContext(world_size=2)
    path = result_path(tmp_path, "toy_pass", CLAIMS["toy_pass"].full_config(ctx))
    path.write_text("[]")
    (result,) = run_claims(["toy_pass"], ctx, tmp_path, figures=False)
    assert result.verdict == "pass" and toys["pass"].calls == 1
    assert load_result(path).verdict == "pass"


def test_compressor_constants_monte_carlo_interval_can_fail(monkeypatch):
    # the Hoeffding range of a rand-k draw is its per-draw maximum: unscaled rand-k's draws lie
    # in [0, 1], so its interval must be narrower than that (it was +-58: a check that cannot
    # fail); scaled rand-k's interval must be a fraction of omega, not +-omega
    claim = CLAIMS["compressor_constants"]
    cfg = {"d": 64, "compressors": ["rand-k", "rand-k-unscaled"], "samples": 20000,
           "random_inputs": 1, "kit_samples": 200}  # fmt: skip
    monkeypatch.setattr(claim, "config", lambda budget: cfg)
    checks = {c["name"]: c for c in claim.run(ClaimContext(world_size=2)).checks}
    lo, hi = checks["rand-k-unscaled"]["interval"]
    assert checks["rand-k-unscaled"]["passed"] and hi - lo < 0.1
    lo, hi = checks["rand-k"]["interval"]
    assert checks["rand-k"]["passed"] and hi - lo < 0.5 * checks["rand-k"]["predicted"]


def test_save_result_is_atomic(tmp_path, monkeypatch):
    r = ClaimResult(claim="c", kind="exact", verdict="pass", config={"a": 1}, measured=1.0)
    path = save_result(r, tmp_path)
    assert path.name == f"c-{config_hash({'a': 1})}.json"
    before = path.read_bytes()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("verify.report.json.dump", broken_dump)
    r.measured = 2.0
    with pytest.raises(OSError):
        save_result(r, tmp_path)
    assert path.read_bytes() == before  # the old result is intact
    assert sorted(os.listdir(tmp_path)) == [path.name]  # and no temporary file remains


def test_save_figure_leaves_the_matplotlib_backend_alone(tmp_path):
    # figures are drawn on a bare Figure (no pyplot): saving one must not switch the process's
    # backend (a notebook calling run_claims keeps its own)
    import matplotlib

    from verify.report import save_figure

    old = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        r = ClaimResult(claim="c", kind="exact", verdict="pass", series={"y": [1.0, 2.0]})
        assert save_figure(r, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(old)


def test_config_hash_is_canonical():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_figures_written_and_redrawn(tmp_path, toys):
    from figures.plot import main as plot_main

    run_claims(["toy_pass", "toy_error"], ClaimContext(world_size=2), tmp_path)
    figs = tmp_path / "figures"
    assert (figs / "toy_pass.png").stat().st_size > 1000
    assert not (figs / "toy_error.png").exists()
    out = tmp_path / "redrawn"
    assert plot_main([str(tmp_path), "--out", str(out)]) == 0
    assert (out / "toy_pass.png").exists()
    assert plot_main([str(tmp_path / "missing")]) == 2


# ---- issue 14: power, shape on intervals, term isolation; issue 8: shared setup --------------


def test_max_abs_t_critical_keeps_the_family_wise_level_and_beats_bonferroni():
    # correlated checkpoints (a random walk's partial sums): the simultaneous max-|t| bands
    # fail a correct prediction with probability ~ 1 - level (99%: at most ~2% in 300 trials,
    # P(false alarm count > 6 | p = 0.01) < 0.003) and are much narrower than Bonferroni's
    rng = np.random.default_rng(3)
    m, R, trials = 12, 200, 300
    fails = 0
    for _ in range(trials):
        x = np.cumsum(rng.standard_normal((R, m)), axis=1)
        fails += not stats.exact_rule(np.zeros(m), x, level=0.99).passed
    assert fails <= 6
    x = np.cumsum(rng.standard_normal((R, m)), axis=1)
    c = stats.max_abs_t_critical(x, 0.99)
    bonferroni = sps.t.ppf(1 - 0.01 / (2 * m), R - 1)
    assert sps.t.ppf(0.995, R - 1) < c < bonferroni
    # nearly identical checkpoints: one test, not m
    z = rng.standard_normal((R, 1))
    c1 = stats.max_abs_t_critical(z + 1e-3 * rng.standard_normal((R, m)), 0.99)
    assert c1 < 1.05 * sps.t.ppf(0.995, R - 1) < 0.85 * bonferroni


def test_exact_rule_reports_its_detectable_error_and_detects_it():
    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 0.5, size=(4000, 1))
    out = stats.exact_rule([1.0], x, level=0.99)
    assert out.passed and 0.02 < out.mde < 0.06  # (2.58 + 1.64) 0.5 / sqrt(4000) = 3.3%
    # a prediction off by the detectable error fails in >= 95% of fresh samples
    misses = sum(
        stats.exact_rule([1.0 + out.mde], rng.normal(1.0, 0.5, size=(4000, 1))).passed
        for _ in range(200)
    )
    assert misses <= 20


def test_shape_rule_needs_the_whole_interval_inside_the_band():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    noisy = x**-1.0 * np.exp([0.3, -0.3, 0.3, -0.3])  # centred, but a wide interval
    out = stats.shape_rule(x, noisy, -1.0, tol=0.5)
    lo, hi = out.interval
    assert lo < -1.0 < hi and hi - lo > 1.0 and not out.passed  # the truth inside, too wide
    assert stats.shape_rule(x, x**-1.0, -1.0, tol=0.15).passed


def test_every_registered_algorithm_has_an_example_in_the_one_table():
    from verify.algorithms import ALGORITHMS
    from verify.claims.common import EXAMPLES, TOPOLOGIES, examples

    assert set(ALGORITHMS) == set(EXAMPLES)
    runs = examples(False) + examples(True)
    for name, kwargs, topo in runs:
        ALGORITHMS[name](**kwargs)  # each example builds, on a topology known by name
        assert topo in TOPOLOGIES
    assert {n for n, *_ in examples(True)} >= {"compressed_psgd", "ef_sgd", "ef21", "choco_sgd"}


def test_topologies_by_name_come_from_theorylab_and_are_doubly_stochastic():
    from verify.claims.common import TOPOLOGIES, schedule, schedule_rho

    for name in TOPOLOGIES:
        n = 9 if name == "torus" else 8
        for W in schedule(name, n):
            assert np.allclose(W.sum(axis=0), 1) and np.allclose(W.sum(axis=1), 1)
    assert schedule_rho(schedule("complete", 5)) < 1e-12
    assert abs(schedule_rho(schedule("ring", 8)) - (1 + 2 * np.cos(2 * np.pi / 8)) / 3) < 1e-12
    with pytest.raises(TheorylabError, match="unknown topology"):
        schedule("moebius", 4)


def test_run_observe_hook_sees_every_step_on_the_simulator():
    from verify.algorithms.gossip import Gossip
    from verify.claims.common import run, schedule

    seen = []
    traj = run(
        ClaimContext(world_size=2), Gossip(), None, schedule("ring", 5),
        np.arange(10.0).reshape(5, 2), 4, seed=0, executor="simulated",
        observe=lambda k, before, after, ctx: seen.append(k) or float(after.x.sum()),
    )  # fmt: skip
    assert seen == [0, 1, 2, 3] and len(traj.observed) == 1
    assert np.allclose(traj.observed[0], 45.0)  # gossip keeps the sum


def test_dsgd_bound_derivation_matches_the_rate_and_pins_each_term():
    from theorylab.rates import dsgd
    from verify.claims.foundation import _derived_bound_terms

    for form in ("atc", "cta"):
        kw = dict(gamma=0.02, L=1.0, mu=0.2, sigma2=1.3, zeta2=0.7, rho=0.4, n=6, form=form)
        rate = dsgd(**kw)
        derived = _derived_bound_terms(**kw)
        for term, value in derived.items():
            assert value > 0 and rate.terms[term] == pytest.approx(value, rel=1e-12)
            assert rate.terms[term] != pytest.approx(value / 2, rel=1e-3)


def test_catalog_groups_claims_by_question_with_a_sentence_and_detectable_errors():
    from verify.claims import catalog, format_catalog

    rows = catalog()
    assert {r["claim"] for r in rows} == set(CLAIMS)
    questions = [r["question"] for r in rows]
    assert all(questions.index(q) == i or questions[i - 1] == q for i, q in enumerate(questions))
    for r in rows:
        assert r["question"].endswith("?") and r["plain"] and r["detectable"]
    text = format_catalog(rows)
    assert "How does the graph affect the rate?" in text and "detectable at 95% power" in text


def test_figures_plot_never_takes_a_file_name_from_file_contents(tmp_path):
    from figures.plot import redraw

    good = {"claim": "toy", "kind": "exact", "verdict": "pass", "timestamp": "1",
            "series": {"p": {"x": [0, 1], "y": [1.0, 2.0]}}}  # fmt: skip
    (tmp_path / "toy-0123456789ab.json").write_text(json.dumps(good))
    evil = dict(good, claim="../../escape")
    (tmp_path / "escape-0123456789ab.json").write_text(json.dumps(evil))
    (tmp_path / "deep-0123456789ab.json").write_text("[" * 200_000)
    os.mkfifo(tmp_path / "fifo-0123456789ab.json")
    with pytest.warns(UserWarning):
        paths = redraw(tmp_path)
    assert [p.name for p in paths] == ["toy.png"]
    assert all(p.parent == tmp_path / "figures" for p in paths)
    assert not (tmp_path.parent / "escape.png").exists()


def test_figures_draw_every_claim_from_a_saved_result_without_importing_claims():
    import ast
    import pathlib

    from figures.draw import DRAWERS

    assert set(DRAWERS) == set(CLAIMS)
    for name in ("draw.py", "plot.py"):
        tree = ast.parse((pathlib.Path(__file__).parent.parent / "figures" / name).read_text())
        mods = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        mods += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        assert not any(m.startswith("verify") for m in mods), (name, mods)


def test_a_failing_row_shows_the_failing_checks_own_values():
    from verify.claims.stats import RuleOutcome

    claim = CLAIMS["compressed_bytes"]
    ok = RuleOutcome(passed=True, predicted=100.0, measured=100.0, interval=(100.0, 100.0),
                     detail="bytes equal")  # fmt: skip
    bad = RuleOutcome(passed=False, predicted=0.0, measured=3e-9, interval=(0.0, 1e-13),
                      detail="max |distributed - simulated| = 3e-09")  # fmt: skip
    r = claim.make_result({"x: bytes": ok, "x: trajectory": bad})
    assert r.verdict == "fail" and r.measured == 3e-9 and r.interval == (0.0, 1e-13)
    assert r.detail.startswith("x: trajectory:")
