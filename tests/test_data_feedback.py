"""Rated chat replies become SFT and preference datasets and regression test cases; the /v1/feedback route."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.data.feedback import (
    load_ratings,
    record_rating,
    save_conversations_dataset,
    save_feedback_dataset,
    save_test_case,
)
from backend.api import add_feedback_routes
from backend.data.store import dataset_path, list_datasets
from backend.core.types import InvalidInputError

HELLO = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
RETRY = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "go away"}]
# The browser sends content as a list of parts.
PARTS = [{"role": "user", "content": [{"type": "text", "text": "2+2?"}]},
         {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
         {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}]


def test_ratings_build_sft_and_preference_datasets(tmp_path: Path) -> None:
    record_rating("alice", "tiny-chat", HELLO, "up", root=tmp_path)
    record_rating("alice", "tiny-chat", RETRY, "up", root=tmp_path)
    record_rating("alice", "tiny-chat", RETRY, "down", root=tmp_path)  # re-rated: the last rating counts
    record_rating("alice", "tiny-chat", PARTS, "up", index=1, root=tmp_path)
    record_rating("alice", "tiny-chat", PARTS, "down", root=tmp_path)
    record_rating("alice", "tiny-chat", PARTS, None, root=tmp_path)  # taken back
    record_rating("bob", "tiny-chat", HELLO, "up", root=tmp_path)
    ratings = load_ratings("alice", root=tmp_path)
    assert [(r.reply, r.rating) for r in ratings] == [("hi there", "up"), ("go away", "down"), ("4", "up")]

    sft = save_feedback_dataset("alice", "chat-sft", "sft", root=tmp_path)
    rows = pd.read_json(sft.files["train"], lines=True).to_dict("records")
    assert [row["messages"] for row in rows] == [HELLO, [{"role": "user", "content": "2+2?"},
                                                         {"role": "assistant", "content": "4"}]]
    pref = save_feedback_dataset("alice", "chat-pref", "preference", root=tmp_path)
    pairs = pd.read_json(pref.files["train"], lines=True).to_dict("records")
    assert len(pairs) == 1 and pairs[0]["prompt"] == HELLO[:1]
    assert pairs[0]["chosen"][0]["content"] == "hi there" and pairs[0]["rejected"][0]["content"] == "go away"
    listed = {info.name: info.kind for info in list_datasets("alice", root=tmp_path)}
    assert listed == {"chat-sft": "sft", "chat-pref": "preference"}
    assert list_datasets("bob", root=tmp_path) == []
    with pytest.raises(InvalidInputError, match="no reply is rated up"):
        save_feedback_dataset("carol", "x", "sft", root=tmp_path)
    with pytest.raises(InvalidInputError, match="rate an assistant reply"):
        record_rating("alice", "tiny-chat", HELLO, "up", index=0, root=tmp_path)


def test_chat_turns_become_a_regression_suite(tmp_path: Path) -> None:
    save_test_case(None, "smoke", PARTS, expected="four", index=1, root=tmp_path)
    save_test_case(None, "smoke", PARTS, root=tmp_path)  # the reply itself is the expected answer
    path = dataset_path(None, "smoke", root=tmp_path)
    frame = pd.read_json(path, lines=True, dtype=False)
    assert list(frame["input"]) == ["2+2?", "and 3+3?"] and list(frame["reference"]) == ["four", "6"]
    # Evaluate's own loader reads it as a generation task.
    from backend.evaluation.data import ColumnMapping, DataSource, load_table, select_examples

    examples = select_examples(load_table(DataSource(path=str(path))), "generation",
                               ColumnMapping(input="input", reference="reference"))
    assert examples.references == ["four", "6"]


def test_feedback_route_stores_per_user_and_checks_credentials(tmp_path: Path) -> None:
    app = FastAPI()
    add_feedback_routes(app, check_token=lambda token: token == "secret",
                        check_basic=lambda user, password: password == "pw", root=tmp_path)
    client = TestClient(app)
    body = {"model": "tiny-chat", "messages": HELLO, "rating": "up"}
    assert client.post("/v1/feedback", json=body).status_code == 401
    answer = client.post("/v1/feedback", json=body, auth=("alice", "pw"))
    assert answer.status_code == 200 and answer.json()["rating"] == "up"
    assert client.post("/v1/feedback", json=body, headers={"Authorization": "Bearer secret"}).status_code == 200
    bad = client.post("/v1/feedback", json={**body, "rating": "meh"}, auth=("alice", "pw"))
    assert bad.status_code == 400 and "rating: 'up', 'down' or null" in bad.json()["error"]["message"]
    assert [r.reply for r in load_ratings("alice", root=tmp_path)] == ["hi there"]
    assert [r.reply for r in load_ratings("api", root=tmp_path)] == ["hi there"]
    listed = client.get("/v1/feedback", auth=("alice", "pw")).json()["ratings"]
    assert [entry["rating"] for entry in listed] == ["up"]
    assert json.loads((tmp_path / "users" / "alice" / "feedback" / "ratings.jsonl").read_text().splitlines()[0])[
        "model"] == "tiny-chat"


def test_exported_conversations_become_an_sft_dataset_in_one_step(tmp_path: Path) -> None:
    export = tmp_path / "chat.json"  # the shape of Chat's Export (ui/chat/transcript.py)
    export.write_text(json.dumps({"format": "llm-workbench-chat", "model": "tiny-chat", "system_prompt": "Be brief.",
                                  "messages": PARTS[:2] + [{"role": "user", "content": "bye"}]}))
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(HELLO))
    info = save_conversations_dataset(None, "imported", [export, plain], root=tmp_path)
    rows = pd.read_json(info.files["train"], lines=True).to_dict("records")
    assert rows[0]["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                                   {"role": "assistant", "content": "4"}]  # ends at the last reply
    assert rows[1]["messages"] == HELLO
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidInputError, match="'broken.json' is not a readable JSON chat export"):
        save_conversations_dataset(None, "bad", [export, broken], root=tmp_path)
    assert [d.name for d in list_datasets(None, root=tmp_path)] == ["imported"]


def test_stats_count_types_empties_duplicates_labels_and_lengths(tmp_path: Path) -> None:
    from backend.data.stats import table_stats
    from backend.evaluation.data import read_file

    path = tmp_path / "s.csv"
    path.write_text("text,label,score\nhello,pos,1\nhello,neg,2.5\n,pos,\nabcdefghij,pos,3\n")
    found = table_stats(read_file(path), "text", "label")
    columns = {c["column"]: c for c in found["columns"]}
    assert (columns["text"]["type"], columns["text"]["empty"], columns["text"]["duplicates"]) == ("text", 1, 1)
    assert (columns["score"]["type"], columns["score"]["empty"]) == ("number", 1)
    assert found["labels"] == [{"label": "pos", "rows": 3, "share": 0.75}, {"label": "neg", "rows": 1, "share": 0.25}]
    assert found["text"]["chars"] == {"min": 0, "mean": 5.0, "median": 5.0, "max": 10}
    assert sum(b["rows"] for b in found["text"]["histogram"]) == 4
    with pytest.raises(InvalidInputError, match="label column: there is no column 'nope'"):
        table_stats(read_file(path), "text", "nope")


def test_feedback_is_bounded_per_rating_per_user_and_listed_in_pages(tmp_path: Path) -> None:
    """Security issue item 3: 40 ratings of ~1 MB were all accepted (a 38 MB file, all of it in one GET)."""
    from backend.data import feedback

    app = FastAPI()
    add_feedback_routes(app, check_basic=lambda user, password: password == "pw", root=tmp_path)
    client = TestClient(app)
    huge = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x" * 900_000}]
    refused = [client.post("/v1/feedback", json={"model": "m", "messages": huge, "rating": "up"}, auth=("eve", "pw"))
               for _ in range(3)]
    assert {answer.status_code for answer in refused} == {400}
    error = refused[0].json()["error"]
    assert error["param"] == "messages" and "over the limit of 262,144 per rating" in error["message"]
    assert load_ratings("eve", root=tmp_path) == []

    # Bytes per user: ratings of ~250 kB each fit until the user's 16 MB are used; re-rating one compacts the log.
    big = lambda i: [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "y" * 250_000}]  # noqa: E731
    fitting = feedback.MAX_USER_FEEDBACK_BYTES // 250_100
    for i in range(fitting):
        feedback.record_rating("eve", "m", big(i), "up", root=tmp_path)
    with pytest.raises(InvalidInputError, match="the most one user keeps is 16 MB") as caught:
        feedback.record_rating("eve", "m", big(fitting), "up", root=tmp_path)
    assert (caught.value.code, caught.value.field) == ("ratings_bytes", "feedback")
    log = tmp_path / "users" / "eve" / "feedback" / "ratings.jsonl"
    assert log.stat().st_size <= feedback.MAX_USER_FEEDBACK_BYTES
    for _ in range(3):  # taking back and re-rating always works: the log is compacted when it would overflow
        feedback.record_rating("eve", "m", big(0), None, root=tmp_path)
        feedback.record_rating("eve", "m", big(0), "down", root=tmp_path)
    assert log.stat().st_size <= feedback.MAX_USER_FEEDBACK_BYTES and len(load_ratings("eve", root=tmp_path)) == fitting

    # The count per user.
    small = lambda i: [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]  # noqa: E731
    for i in range(feedback.MAX_USER_RATINGS):
        feedback.record_rating("bob", "m", small(i), "up", root=tmp_path)
    over = client.post("/v1/feedback", json={"model": "m", "messages": small(-1), "rating": "up"}, auth=("bob", "pw"))
    assert over.status_code == 400 and "1,000 ratings, the most one user keeps" in over.json()["error"]["message"]
    again = client.post("/v1/feedback", json={"model": "m", "messages": small(5), "rating": "down"}, auth=("bob", "pw"))
    assert again.status_code == 200  # re-rating a stored reply is no new rating

    # The listing comes in pages.
    first = client.get("/v1/feedback", auth=("bob", "pw")).json()
    assert len(first["ratings"]) == 100 and first["total"] == 1000 and first["next_offset"] == 100
    last = client.get("/v1/feedback?offset=950&limit=500", auth=("bob", "pw")).json()
    assert len(last["ratings"]) == 50 and last["next_offset"] is None
    assert last["ratings"][-1]["conversation"][0]["content"] == "q5"  # re-rated: moved to the end
    assert client.get("/v1/feedback?limit=501", auth=("bob", "pw")).json()["error"]["param"] == "limit"

    # ... and in bytes: eve's ~250 kB ratings come about 4 MB to a page (not all 16 MB in one body), each once.
    from backend.api.feedback import MAX_PAGE_BYTES

    seen: list[str] = []
    pages = 0
    offset: int | None = 0
    while offset is not None:
        answer = client.get(f"/v1/feedback?offset={offset}&limit=500", auth=("eve", "pw"))
        assert len(answer.content) <= MAX_PAGE_BYTES + 1_000 and answer.json()["ratings"], len(answer.content)
        seen += [rating["conversation"][0]["content"] for rating in answer.json()["ratings"]]
        offset, pages = answer.json()["next_offset"], pages + 1
    assert sorted(seen) == sorted(f"q{i}" for i in range(fitting))  # every rating once, in some page
    assert pages >= feedback.MAX_USER_FEEDBACK_BYTES // MAX_PAGE_BYTES


def test_a_name_clash_is_refused_by_name_without_a_server_path(tmp_path: Path) -> None:
    """Issue 28: saving conversations under a taken name said "out: '/srv/.../datasets/NAME' already exists"."""
    from ui.i18n.error_words import worded

    export = tmp_path / "plain.json"
    export.write_text(json.dumps(HELLO))
    save_conversations_dataset(None, "taken", [export], root=tmp_path)
    with pytest.raises(InvalidInputError) as refused:
        save_conversations_dataset(None, "taken", [export], root=tmp_path)
    error = refused.value
    assert (error.code, error.field, error.params) == ("dataset_exists", "name", {"name": "taken"})
    for said in (str(error), worded(error, plain=True)):
        assert "taken" in said and str(tmp_path) not in said and "/" not in said.replace("'taken'", ""), said
    assert [d.name for d in list_datasets(None, root=tmp_path)] == ["taken"]  # the first one is untouched
