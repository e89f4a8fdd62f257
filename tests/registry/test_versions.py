import threading

import pytest

from feedback_loop.core import db
from feedback_loop.core.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from feedback_loop.registry import versions as registry

from ..support.helpers import register_toy, toy_estimator

pytestmark = pytest.mark.integration


def test_register_records_checksum_metrics_and_snapshot_and_loads_back(conn):
    version = register_toy(conn, metrics={"accuracy": 0.9}, data_snapshot={"rows": 120, "rows_sha256": "ab"})
    assert version.version == 1
    assert version.sha256 == registry.sha256_file(version.artifact_path)
    assert version.metrics == {"accuracy": 0.9}
    assert version.classes == ["a", "b"]
    registry.promote(conn, "toy", 1, actor="test", reason="first")
    estimator, entry = registry.load(conn, "toy")
    assert entry.version == 1
    assert list(estimator.predict(__import__("pandas").DataFrame({"f0": [2.0], "f1": [0.0]}))) == ["b"]


def test_tampered_artifact_is_refused(conn):
    version = register_toy(conn)
    with version.artifact_path.open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        registry.load(conn, "toy", 1)


def test_artifact_with_untrusted_types_is_refused_even_with_matching_checksum(conn):
    import os

    from sklearn.preprocessing import FunctionTransformer

    version = registry.register(conn, "toy", FunctionTransformer(func=os.system), created_by="test")
    with pytest.raises(IntegrityError, match="untrusted types"):
        registry.load(conn, "toy", version.version)


def test_rollback_restores_previous_champion_and_walks_back_the_lineage(conn):
    for _ in range(3):
        register_toy(conn)
    registry.promote(conn, "toy", 1, actor="test")
    registry.promote(conn, "toy", 2, actor="test")
    registry.promote(conn, "toy", 3, actor="test")
    event = registry.rollback(conn, "toy", actor="oncall", reason="v3 regressed")
    assert (event.version, event.previous_version, event.action) == (2, 3, "rollback")
    assert registry.champion(conn, "toy").version == 2
    assert registry.rollback(conn, "toy", actor="oncall").version == 1
    with pytest.raises(InvalidInputError, match="nothing earlier to roll back to"):
        registry.rollback(conn, "toy", actor="oncall")
    history = registry.alias_history(conn, "toy")
    assert [(e.action, e.version) for e in history] == [
        ("promote", 1),
        ("promote", 2),
        ("promote", 3),
        ("rollback", 2),
        ("rollback", 1),
    ]
    estimator, entry = registry.load(conn, "toy")
    assert entry.version == 1 and hasattr(estimator, "predict_proba")


def test_rollback_without_earlier_version_or_model_is_a_clear_error(conn):
    with pytest.raises(NotFoundError, match="unknown model 'ghost'"):
        registry.rollback(conn, "ghost", actor="t")
    register_toy(conn)
    with pytest.raises(InvalidInputError, match="no champion to roll back"):
        registry.rollback(conn, "toy", actor="t")
    registry.promote(conn, "toy", 1, actor="t")
    with pytest.raises(InvalidInputError, match="nothing earlier"):
        registry.rollback(conn, "toy", actor="t")


def test_rejected_versions_never_serve_and_stale_expectations_conflict(conn):
    register_toy(conn)
    register_toy(conn, status="rejected")
    registry.promote(conn, "toy", 1, actor="t")
    with pytest.raises(InvalidInputError, match="rejected"):
        registry.promote(conn, "toy", 2, actor="t")
    register_toy(conn)
    with pytest.raises(ConflictError, match="someone moved it"):
        registry.promote(conn, "toy", 3, actor="t", expected_current=2)
    with pytest.raises(ConflictError, match="already champion"):
        registry.promote(conn, "toy", 1, actor="t")


def test_concurrent_promotions_leave_exactly_one_consistent_champion(conn, db_url):
    versions = [register_toy(conn).version for _ in range(6)]
    registry.promote(conn, "toy", versions[0], actor="t")
    conn.commit()
    barrier = threading.Barrier(5)
    errors: list[Exception] = []

    def promote(version: int) -> None:
        try:
            with db.connect(db_url) as other:
                barrier.wait()
                registry.promote(other, "toy", version, actor=f"t{version}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    history = registry.alias_history(conn, "toy")
    assert len(history) == 6
    # Serialised: every event replaced exactly the version the previous event installed.
    for before, after in zip(history, history[1:], strict=False):
        assert after.previous_version == before.version
    assert registry.champion(conn, "toy").version == history[-1].version


def test_concurrent_registrations_get_distinct_versions(conn, db_url):
    results: list[int] = []

    def register() -> None:
        with db.connect(db_url) as other:
            results.append(registry.register(other, "toy", toy_estimator(), created_by="t").version)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [1, 2, 3, 4]


def test_writing_an_artifact_where_airflow_is_loaded_logs_no_airflow_deprecation_flood(tmp_path):
    # A fresh interpreter, as a task has: skops warns through Airflow's shims only on its first import.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import airflow.sdk
        from pathlib import Path
        from sklearn.dummy import DummyClassifier
        from feedback_loop.registry import versions as registry
        from feedback_loop.core import artifact_store
        url, _ = registry.write_artifact(DummyClassifier().fit([[0], [1]], ["0", "1"]), "m", 1, Path({str(tmp_path)!r}))
        print(type(registry.read_skops(artifact_store.read_bytes(url), "m v1")).__name__)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "DummyClassifier"
    output = done.stdout + done.stderr
    assert output.count("DeprecatedImportWarning") == 0, output[:1000]


# ---- hostile artifacts: checked before any version becomes champion (issue 14) ---------------------------


def test_promote_and_rollback_refuse_a_tampered_artifact_and_leave_the_champion(conn):
    from ..support.artifacts import flip_byte

    for _ in range(3):
        register_toy(conn)
    registry.promote(conn, "toy", 1, actor="t")
    registry.promote(conn, "toy", 2, actor="t")
    flip_byte(registry.get_version(conn, "toy", 1).artifact_path)
    flip_byte(registry.get_version(conn, "toy", 3).artifact_path)

    with pytest.raises(
        IntegrityError, match=r"toy v1: artifact checksum mismatch \(recorded \w{12}…"
    ) as refused:
        registry.rollback(conn, "toy", actor="oncall")
    assert "champion stays v2" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(IntegrityError, match="toy v3: artifact checksum mismatch"):
        registry.promote(conn, "toy", 3, actor="t")
    assert registry.current_version(conn, "toy") == 2
    assert [e.version for e in registry.alias_history(conn, "toy")] == [1, 2]


def test_promotion_refuses_a_version_that_does_not_fit_the_model(conn):
    from ..support.artifacts import fitted

    register_toy(conn)  # v1: reads f0, f1 and predicts a, b
    registry.promote(conn, "toy", 1, actor="t")
    registry.register(conn, "toy", fitted(["f0", "f1", "f2"]), created_by="t")  # v2
    registry.register(conn, "toy", fitted(["f0", "g1"]), created_by="t")  # v3
    registry.register(conn, "toy", fitted(["f0", "f1"], ["a", "c"]), created_by="t")  # v4
    registry.register(conn, "toy", fitted(2), created_by="t")  # v5: fitted without feature names
    registry.register(conn, "toy", fitted(["f0", "f1"]), created_by="t", classes=["x", "y"])  # v6

    refusals = {
        2: (InvalidInputError, r"toy v2: n_features_in_ 3 but the model has 2 features \(champion v1\)"),
        3: (
            InvalidInputError,
            r"toy v3: feature columns differ from those of champion v1: missing \['f1'\], unknown \['g1'\]",
        ),
        4: (InvalidInputError, r"toy v4: classes differ from champion v1's: v4 lacks \['b'\]"),
        5: (InvalidInputError, r"toy v5: fitted without feature names \(n_features_in_ 2\)"),
        6: (
            IntegrityError,
            r"toy v6: the artifact predicts classes \['a', 'b'\] but the registry records \['x', 'y'\]",
        ),
    }
    for version, (error, message) in refusals.items():
        with pytest.raises(error, match=message) as refused:
            registry.promote(conn, "toy", version, actor="t")
        assert str(refused.value).endswith("; not promoted: champion stays v1"), refused.value
    assert registry.current_version(conn, "toy") == 1
    assert len(registry.alias_history(conn, "toy")) == 1


def test_a_later_version_may_add_a_class_and_a_rollback_may_go_back_to_fewer(conn):
    from ..support.artifacts import fitted

    registry.register(conn, "toy", fitted(["f0", "f1"]), created_by="t")
    registry.register(conn, "toy", fitted(["f1", "f0"], ["a", "b", "new"]), created_by="t")
    registry.promote(conn, "toy", 1, actor="t")
    registry.promote(conn, "toy", 2, actor="t")  # people taught it a label: allowed
    assert registry.rollback(conn, "toy", actor="t").version == 1


def test_the_configured_feature_columns_are_what_a_version_must_read(conn, tmp_path, monkeypatch):
    configured = tmp_path / "features.yaml"
    configured.write_text(
        "models:\n  - {name: toy, label_column: y, feature_columns: [f0, f1, f2], training_data: {path: x.csv}}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(configured))
    register_toy(conn)
    with pytest.raises(
        InvalidInputError,
        match=r"toy v1: n_features_in_ 2 but the model has 3 features \(feature_columns in ",
    ):
        registry.promote(conn, "toy", 1, actor="t")
    assert registry.current_version(conn, "toy") is None
