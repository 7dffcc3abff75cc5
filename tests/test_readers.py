"""Readers and preprocessing: malformed files are rejected naming the file and the line; the CSV and .inter
paths (k-core, time order, re-indexing) give hand-computed results."""
import re

import numpy as np
import pandas as pd
import pytest

from rasekit.data import (DataFormatError, load_file, read_inter, read_item_attributes, read_ratings_csv, read_sequences)
from rasekit.data.preprocess import k_core, to_sequences

pytestmark = pytest.mark.usefixtures("no_network")


def raises_at(reader, path, line, what):
    """Assert that reading `path` fails with a message naming the file, the line and `what`."""
    with pytest.raises(DataFormatError) as err:
        reader(path)
    prefix = f"{path}:{line}: " if line else f"{path}: "
    assert str(err.value).startswith(prefix), str(err.value)
    assert re.search(what, str(err.value)), str(err.value)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- S3-Rec sequence files -----------------------------------------------------------------------------

def test_read_sequences(tmp_path):
    path = write(tmp_path, "ok.txt", "1 3 2 3\n2 1 2\n")
    assert read_sequences(path) == {1: [3, 2, 3], 2: [1, 2]}


@pytest.mark.parametrize("text, line, what", [
    ("1 2 3\n2 4 x\n", 2, "non-integer token 'x'"),
    ("1 2 3\n2 4 3.0\n", 2, "non-integer token '3.0'"),
    ("1 2 3\n2 +4 5\n", 2, r"non-integer token '\+4'"),
    ("1 2 3\n2 ² 5\n", 2, "non-integer token '²'"),
    ("1 2 3\n2\n3 1 2\n", 2, "user 2 has no items"),
    ("1 2 3\n2 1 2\n1 4 5\n", 3, "user 1 is listed twice"),
    ("1 2 3\n\n2 3 4\n", 2, "blank line"),
    ("1 2 3\n2 0 4\n", 2, "id 0 is not positive"),
    ("-1 2 3\n", 1, "id -1 is not positive"),
])
def test_malformed_sequences(tmp_path, text, line, what):
    raises_at(read_sequences, write(tmp_path, "bad.txt", text), line, what)


@pytest.mark.parametrize("reader, name", [(read_sequences, "e.txt"), (read_item_attributes, "e.json"),
                                          (read_inter, "e.inter"), (read_ratings_csv, "e.csv")])
def test_empty_and_missing_files(tmp_path, reader, name):
    raises_at(reader, write(tmp_path, name, ""), None, "file is empty")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing"))):
        reader(tmp_path / "missing")


# --- item attributes -----------------------------------------------------------------------------------

def test_read_item_attributes(tmp_path):
    path = write(tmp_path, "a.json", '{"1": [4, 2], "2": [], "3": [1]}')
    assert read_item_attributes(path) == {1: [4, 2], 2: [], 3: [1]}


@pytest.mark.parametrize("text, line, what", [
    ('{\n "1": [1, 2],\n "2": [3,]\n}', 3, "invalid JSON"),
    ('{\n "1": [1],\n "2": "12"\n}', 3, "item 2: attributes must be a list of integers"),
    ('{\n "1": [1.5]\n}', 2, "item 1: attributes must be a list of integers"),
    ('{\n "x": [1]\n}', 2, "item id 'x' is not an integer"),
    ("[[1, 2]]", None, "expected a JSON object"),
])
def test_malformed_attributes(tmp_path, text, line, what):
    raises_at(read_item_attributes, write(tmp_path, "bad.json", text), line, what)


# --- RecBole .inter and ratings CSV --------------------------------------------------------------------

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def test_read_inter_and_csv(tmp_path):
    inter = write(tmp_path, "x.inter", INTER_HEADER + "u1\ti1\t5\t10\nu2\ti1\t3\t2.5\n")
    csv = write(tmp_path, "x.csv", "u1,i1,5.0,10\nu2,i1,3.0,2.5\n")
    expected = pd.DataFrame({"user": ["u1", "u2"], "item": ["i1", "i1"], "timestamp": [10.0, 2.5]})
    for frame in (read_inter(inter), read_ratings_csv(csv)):
        assert frame.astype({"user": str, "item": str}).equals(expected.astype({"user": str, "item": str}))


@pytest.mark.parametrize("text, line, what", [
    ("user_id:token\titem_id:token\trating:float\n1\t2\t5\n", 1, "header lacks timestamp"),
    ("session:token\tproduct:token\n1\t2\n", 1, "header lacks user_id, item_id, timestamp"),
    (INTER_HEADER + "1\t2\t5\t100\n1\t3\t5\tnoon\n", 3, "non-numeric timestamp 'noon'"),
    (INTER_HEADER + "1\t2\t5\t100\n1\t3\t5\n", 3, "expected 4 fields"),
    (INTER_HEADER + "1\t2\t5\t100\n\n1\t3\t5\t7\n", 3, "blank line"),
    (INTER_HEADER + "1\t\t5\t100\n", 2, "empty user or item id"),
])
def test_malformed_inter(tmp_path, text, line, what):
    raises_at(read_inter, write(tmp_path, "bad.inter", text), line, what)


@pytest.mark.parametrize("text, line, what", [
    ("a,x,5.0,100\nb,y,4.0,100\nb,x,4.0,yesterday\n", 3, "non-numeric timestamp 'yesterday'"),
    ("a,x,5.0,100\nb,y,4.0,nan\n", 2, "non-numeric timestamp 'nan'"),
    ("user,item,rating,timestamp\na,x,5.0,100\nb,y,4.0,when\n", 3, "non-numeric timestamp 'when'"),
    ("a,x,5.0,100\nb,y,great,100\n", 2, "non-numeric rating 'great'"),
    ("a,x,five,100\n", 1, "non-numeric rating 'five'"),
    ("a,x,5.0,100,7\nb,y,4.0,100\n", 1, "expected 4 fields .*found 5"),
    ("a,x,5.0,100\nb,y,100\n", 2, "expected 4 fields .*found 3"),
    ("a,x,5.0,100\n\nb,y,4.0,zz\n", 2, "blank line"),
])
def test_malformed_csv(tmp_path, text, line, what):
    raises_at(read_ratings_csv, write(tmp_path, "bad.csv", text), line, what)


# --- k-core, time order and re-indexing, end to end ----------------------------------------------------

# Rows in file order: user, items, timestamps. Five users share items p1..p5 (a 5 x 5 core). 'uf' has five
# interactions, but one is the only interaction of 'rare': round 1 drops 'rare' (and 'ug', 2 interactions),
# round 2 drops 'uf', now at 4. A single pass would keep 'uf'. Rows are not in time order; in 'ua', p4 and
# p3 share a timestamp and keep their file order.
RAW = [("uf", "p1 p2 p3 p4 rare", "1 2 3 4 5"),
       ("ug", "p1 p2", "1 2"),
       ("ub", "p4 p5 p2 p1 p3", "50 40 30 20 10"),
       ("ua", "p5 p4 p3 p2 p1", "50 40 40 20 10"),
       ("ud", "p1 p2 p3 p4 p5", "5 4 3 2 1"),
       ("uc", "p4 p5 p1 p3 p2", "5 4 3 2 1.5"),
       ("ue", "p3 p2 p1 p5 p4", "9 8 7 6 5")]
ROWS = [(u, i, t) for u, items, times in RAW for i, t in zip(items.split(), times.split())]
# Users numbered by first appearance (ub=1, ua=2, ud=3, uc=4, ue=5); items by first appearance walking the
# users' time-ordered sequences: ub is p3 p1 p2 p5 p4, so p3=1, p1=2, p2=3, p5=4, p4=5.
EXPECTED = [[1, 2, 3, 4, 5],   # ub: p3 p1 p2 p5 p4
            [2, 3, 5, 1, 4],   # ua: p1 p2 p4 p3 p5 (tie p4/p3 in file order)
            [4, 5, 1, 3, 2],   # ud: p5 p4 p3 p2 p1
            [3, 1, 2, 4, 5],   # uc: p2 p3 p1 p5 p4
            [5, 4, 2, 3, 1]]   # ue: p4 p5 p1 p2 p3


def frame():
    return pd.DataFrame(ROWS, columns=["user", "item", "timestamp"]).astype({"timestamp": float})


def test_k_core_is_iterative():
    kept = k_core(frame(), k=5)
    assert len(kept) == 25
    assert set(kept["user"]) == {"ua", "ub", "uc", "ud", "ue"}
    assert set(kept["item"]) == {"p1", "p2", "p3", "p4", "p5"}
    assert len(k_core(frame(), k=2)) == len(ROWS) - 1  # only 'rare' goes
    with pytest.raises(ValueError, match="k=0 is not allowed: the k-core needs an integer >= 1"):
        k_core(frame(), k=0)


def test_to_sequences_orders_and_reindexes():
    assert to_sequences(frame(), k=5) == {u: seq for u, seq in enumerate(EXPECTED, start=1)}
    with pytest.raises(ValueError, match="no interactions survive 6-core"):
        to_sequences(frame(), k=6)


def test_equal_timestamps_keep_file_order():
    # 'a' numbers the items 1..200 in file order; 'b' has the same items with many equal timestamps.
    times = np.random.default_rng(0).integers(0, 5, size=200)
    rows = [("a", f"i{k}", float(k)) for k in range(200)]
    rows += [("b", f"i{k}", float(t)) for k, t in enumerate(times)]
    sequences = to_sequences(pd.DataFrame(rows, columns=["user", "item", "timestamp"]), k=1)
    assert sequences[1] == list(range(1, 201))
    assert sequences[2] == (np.argsort(times, kind="stable") + 1).tolist()


@pytest.fixture(params=["csv", "inter"])
def raw_file(request, tmp_path):
    if request.param == "csv":
        text = "".join(f"{u},{i},4.0,{t}\n" for u, i, t in ROWS)
    else:  # columns in another order than the reader's output, plus an extra one
        text = "timestamp:float\titem_id:token\tuser_id:token\trating:float\n"
        text += "".join(f"{t}\t{i}\t{u}\t4\n" for u, i, t in ROWS)
    return write(tmp_path, f"Shop.{request.param}", text)


def test_load_file_end_to_end(raw_file):
    data = load_file(raw_file)
    assert data.statistics() == {"dataset": "Shop", "users": 5, "items": 5, "interactions": 25,
                                 "avg_length": 5.0, "sparsity": 0.0, "train": 10, "valid": 5, "test": 5}
    assert [s.tolist() for s in data.sequences] == EXPECTED
    assert data.test.targets.tolist() == [5, 4, 2, 5, 1]
    assert data.valid.targets.tolist() == [4, 1, 3, 4, 3]
    assert data.train.targets.tolist() == [2, 3, 3, 5, 5, 1, 1, 2, 4, 2]


def test_load_file_k_and_formats(raw_file, tmp_path):
    with pytest.warns(UserWarning, match="dropped 1 users"):  # 'ug' survives 2-core with 2 items: too few
        assert load_file(raw_file, k=2).statistics()["users"] == 6
    txt = write(tmp_path, "Seq.txt", "".join(f"{u} " + " ".join(map(str, s)) + "\n"
                                             for u, s in enumerate(EXPECTED, start=1)))
    assert [s.tolist() for s in load_file(txt).sequences] == EXPECTED
    with pytest.raises(ValueError, match="unknown format '.json'"):
        load_file(write(tmp_path, "x.json", "{}"))
