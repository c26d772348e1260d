"""What the API keeps between requests, in process with the real model and store: the clinic's
context (made once, made again when the clinic changes; never a copy of the assistant), key checks
that see a revocation at once, and audit records written by a background thread (none lost)."""

from __future__ import annotations

import shutil
import sqlite3
import threading

import pytest

from assistant import Assistant, Settings
from assistant.clinics.registry import AuditWriter, ClinicRegistry

pytestmark = pytest.mark.integration

POOL = (
    "Our hydrotherapy pool sessions for hamstring tendinopathy run on Tuesday and Thursday mornings at nine. "
    "Walking in chest-deep water loads the hamstring tendon gently while buoyancy takes weight off the sit bone."
)
POOL_QUESTION = "When do the hydrotherapy pool sessions run?"
URGENT = "I suddenly can't control my bladder and my hamstring pain is much worse"


@pytest.fixture
def clinic_assistant(tmp_path, built_data_dir, embeddings):
    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    a = Assistant.from_settings(Settings(data_dir=data), embeddings=embeddings, notify=lambda m: None)
    a.warm_up()
    a.library.registry.add_clinic("North Physio", emergency_text="999 or NHS 111")
    a.library.registry.add_clinic("South Clinic")
    yield a
    a.library.registry.close()
    a.library.store.release()
    a.close()


def _cited(answer, doc_id: str) -> list:
    return [c for c in answer.citations if c.source.startswith(doc_id)]


def test_the_clinic_context_is_made_once_and_again_when_its_documents_change(clinic_assistant):
    a = clinic_assistant
    north = a.for_clinic("north-physio")
    context = north.context()
    assert north.context() is context  # kept: nothing is built per question
    assert a.for_clinic("south-clinic").context() is not context
    assert context.retriever is a.retriever  # no documents of its own yet: the shared corpus alone

    doc = a.library.upload("north-physio", "pool.md", f"# Hydrotherapy pool\n\n{POOL}\n".encode())
    assert north.context() is context  # a draft changes nothing
    assert _cited(north.ask(POOL_QUESTION), doc.id) == []

    a.library.approve("north-physio", doc.id, "Dr Jane Smith")
    approved = north.context()
    assert approved is not context and approved.approvers == {doc.id: "Dr Jane Smith"}
    quoted = _cited(north.ask(POOL_QUESTION), doc.id)  # the first question after approval
    assert quoted and all(c.approved_by == "Dr Jane Smith" for c in quoted)
    assert _cited(a.for_clinic("south-clinic").ask(POOL_QUESTION), doc.id) == []
    assert _cited(a.ask(POOL_QUESTION), doc.id) == []  # the assistant's own context is untouched

    a.library.delete("north-physio", doc.id)
    removed = north.context()
    assert removed is not approved and _cited(north.ask(POOL_QUESTION), doc.id) == []


def test_a_changed_clinic_record_makes_a_new_context(clinic_assistant):
    a = clinic_assistant
    north = a.for_clinic("north-physio")
    context = north.context()
    assert "999 or NHS 111" in north.ask(URGENT).text
    with sqlite3.connect(a.library.registry.path) as db:  # as another process would change it
        db.execute("UPDATE clinics SET emergency_text = '112' WHERE id = 'north-physio'")
    assert north.context() is not context
    reply = north.ask(URGENT).text
    assert "112" in reply and "NHS 111" not in reply
    assert "your local emergency number" in a.ask(URGENT).text  # the default context is unchanged


def test_a_document_change_by_another_worker_reaches_the_context_after_the_refresh(clinic_assistant, monkeypatch):
    a = clinic_assistant
    north = a.for_clinic("north-physio")
    context = north.context()
    with sqlite3.connect(a.library.registry.path) as db:  # another worker approved or deleted one
        db.execute("UPDATE clinics SET revision = revision + 1 WHERE id = 'north-physio'")
    monkeypatch.setattr(a.library, "_checked", 0.0)  # as if clinic_refresh_seconds had passed
    fresh = north.context()
    assert fresh is not context and north.context() is fresh


def test_every_answer_for_a_clinic_has_its_audit_record_in_order(clinic_assistant):
    a = clinic_assistant
    view = a.for_clinic("south-clinic")
    answers: list = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        answer = view.ask(f"Can running be part of my rehab? ({i})")
        with lock:
            answers.append(answer.id)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = a.library.registry.audit("south-clinic", limit=100)  # waits for this process's rows
    assert sorted(r["answer_id"] for r in records) == sorted(answers)
    assert [r["id"] for r in records] == sorted((r["id"] for r in records), reverse=True)


def test_a_revocation_by_another_process_is_seen_by_the_next_key_check(tmp_path):
    server = ClinicRegistry(tmp_path / "c.sqlite3")
    cli = ClinicRegistry(tmp_path / "c.sqlite3")  # another connection, as `pht-assistant key revoke`
    server.add_clinic("A Clinic")
    key = cli.create_key("a-clinic")
    for _ in range(3):  # reads leave no snapshot open behind them
        assert server.authenticate(key).clinic.id == "a-clinic"
    cli.revoke_key(key)
    assert server.authenticate(key) is None


def test_the_audit_writer_keeps_order_retries_failures_and_flushes_on_close():
    written: list = []
    failures = [2]  # the first two writes fail (a locked or unreachable file)

    def write(rows):
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        written.extend(rows)

    w = AuditWriter(write, retry_seconds=0.01)
    for i in range(50):
        w.put(i)
    assert w.flush(10.0) and written == list(range(50))  # retried, nothing dropped, in order
    for i in range(50, 60):
        w.put(i)
    w.close()  # as at shutdown: everything queued is written first
    assert written == list(range(60)) and w.pending() == 0
    w.put(60)  # after close: written at once by the caller
    assert written[-1] == 60


def test_the_chain_steps_take_the_turn_alone(assistant):
    """`flow.stage` gives each step a one-argument signature (LangChain checks it on every call):
    true only while the step methods take the turn and nothing else."""
    import inspect

    flow = assistant.flow
    for method in (flow.embed, flow.safety, flow.rewrite, flow.retrieve, flow.scope, flow.judge,
                   flow.compose, flow.ground, flow.finish):
        assert list(inspect.signature(method).parameters) == ["turn"], method
    names = [step.name for step in flow.prepare.steps]
    assert names[:2] == ["embed", "safety"]
    assert [step.name for step in flow.respond.steps] == ["compose", "ground", "finish"]
