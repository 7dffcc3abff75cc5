"""Property tests: random malformed data files and random settings reach the kit's own errors (which name
the file and line, or the setting, the value and what is allowed), never another exception."""
import math
import string
import warnings

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from rasekit.memory import partitions
from rasekit.runs import experiments
from rasekit import settings
from rasekit.data import DataFormatError, load_file, read_item_attributes
from rasekit.stages.loop import TrainConfig

KIT_ERRORS = (DataFormatError, settings.SettingsError)
EXAMPLES = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Files close to the real formats (mostly well-formed rows with a few bad tokens), so that the readers
# get past their first checks and meet the deeper faults; and arbitrary bytes.
BAD = st.sampled_from(["0", "-4", "2.5", "x", "", " ", "nan", "1e9", "99999999999999999999", "\x00", "é",
                       '"', "user", "timestamp", "\t", ","])
TOKEN = st.one_of(st.integers(1, 9).map(str), st.integers(1, 9).map(str), BAD)
LINE_END = st.sampled_from(["\n", "\n", "\n", "\r\n", ""])


def rows(separator: str, n_fields, header: str = ""):
    row = st.lists(TOKEN, min_size=n_fields[0], max_size=n_fields[1]).map(separator.join)
    return st.tuples(st.lists(row, min_size=1, max_size=25), LINE_END).map(
        lambda r: (header + "\n".join(r[0]) + r[1]).encode())


NEAR_FORMAT = {".txt": rows(" ", (2, 8)), ".csv": rows(",", (4, 4)),
               ".inter": rows("\t", (4, 4), "user_id:token\titem_id:token\trating:float\ttimestamp:float\n")}
ANY_BYTES = st.binary(max_size=300)
VALID_LINES = st.lists(st.lists(st.integers(1, 12), min_size=2, max_size=8), min_size=1, max_size=8)


def _load(tmp_path, suffix: str, content: bytes):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropped short users and repeated pairs are reported as warnings
        return load_file(path, k=1)


@EXAMPLES
@given(data=st.data(), suffix=st.sampled_from([".txt", ".csv", ".inter"]))
def test_malformed_files_give_only_the_kits_errors(tmp_path, data, suffix):
    content = data.draw(st.one_of(NEAR_FORMAT[suffix], ANY_BYTES))
    try:
        data = _load(tmp_path, suffix, content)
    except KIT_ERRORS as err:
        assert str(tmp_path) in str(err) or "no user has" in str(err) or "k-core" in str(err)
    else:
        assert data.n_items >= 1 and len(data.test) >= 1


@EXAMPLES
@given(lines=VALID_LINES, cut=st.integers(1, 40))
def test_a_truncated_sequence_file_is_never_read_as_data(tmp_path, lines, cut):
    text = "".join(f"{u + 1} " + " ".join(map(str, items)) + "\n" for u, items in enumerate(lines))
    truncated = text.encode()[:max(1, len(text) - cut)]
    if truncated.endswith(b"\n"):
        return  # cut exactly at a line end: a shorter but whole file
    with pytest.raises(KIT_ERRORS):
        _load(tmp_path, ".txt", truncated)


@EXAMPLES
@given(content=st.one_of(ANY_BYTES, st.dictionaries(st.text(string.printable, max_size=4),
                                         st.one_of(st.integers(), st.lists(st.integers()), st.text()),
                                         max_size=4).map(lambda d: str(d).replace("'", '"').encode())))
def test_malformed_attribute_files_give_only_the_kits_errors(tmp_path, content):
    path = tmp_path / "items_item2attributes.json"
    path.write_bytes(content)
    try:
        attributes = read_item_attributes(path)
    except DataFormatError as err:
        assert str(path) in str(err)
    else:
        assert all(isinstance(v, list) for v in attributes.values())


ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10**7, 10**7), st.floats(allow_nan=True),
                      st.text(max_size=5), st.lists(st.integers(), max_size=2))


@EXAMPLES
@given(given_settings=st.dictionaries(st.sampled_from(["k", "alpha", "beta", "tau", "dropout", "index",
                                                       "nlist", "nprobe", "fetch", "residual", "kay"]),
                                      ANY_VALUE, max_size=4))
def test_random_ram_settings_are_valid_or_refused_by_name(given_settings):
    try:
        ram = settings.RamConfig.of(given_settings, experiments.RAM)
    except settings.SettingsError as err:
        assert any(name in str(err) for name in given_settings)
    else:
        assert 1 <= ram.k <= ram.K_MAX and 0 <= ram.alpha <= 1 and 0 <= ram.beta <= 1 and ram.tau > 0


@EXAMPLES
@given(given_settings=st.dictionaries(st.sampled_from(["epochs", "batch_size", "lr", "weight_decay",
                                                       "patience", "valid_metric", "eval_chunk", "lr_decay"]),
                                      st.one_of(ANY_VALUE, st.sampled_from(["HR@10", "NDCG@5", "MRR@50"])),
                                      max_size=4))
def test_random_training_settings_are_valid_or_refused_by_name(given_settings):
    try:
        config = TrainConfig.of(given_settings, experiments.PRETRAIN)
    except settings.SettingsError as err:
        assert any(name in str(err) for name in given_settings)
    else:
        assert config.epochs >= 1 and config.batch_size >= 1 and math.isfinite(config.lr) and config.lr > 0
        assert config.valid_metric in settings.METRICS


@EXAMPLES
@given(partition=st.one_of(ANY_VALUE, st.fixed_dictionaries(
    {"by": st.sampled_from(["length", "popularity", "sample", "users", "age"])},
    optional={"lower": ANY_VALUE, "upper": ANY_VALUE, "fraction": ANY_VALUE, "seed": ANY_VALUE,
              "invert": ANY_VALUE})))
def test_random_partitions_are_valid_or_refused(partition):
    try:
        partitions.check(partition)
    except settings.SettingsError as err:
        assert "not allowed" in str(err) or "unknown" in str(err) or "partition" in str(err)
