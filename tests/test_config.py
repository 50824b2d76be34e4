import pytest

from flows.config import ConfigError, PRESETS, load_config


def test_defaults_are_the_sample_preset():
    cfg = load_config(environ={})
    assert cfg.output == "runs/sample"
    assert cfg.input == []
    assert cfg.filter.enabled and cfg.dedup.enabled and cfg.pretrain.enabled
    assert cfg.pretrain.objective == "causal"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates(name):
    load_config(preset=name, environ={})


def test_load_order_yaml_then_set_then_environment(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tokenizer:\n  vocab_size: 2048\nfilter:\n  min_words: 10\n")
    cfg = load_config(path, sets=["tokenizer.vocab_size=4096"], environ={"CORPUSFORGE__FILTER__MIN_WORDS": "7"})
    assert cfg.tokenizer.vocab_size == 4096
    assert cfg.filter.min_words == 7


def test_set_parses_yaml_values():
    cfg = load_config(sets=["filter.languages=[en, de]", "dedup.enabled=false", "pretrain.lr=3e-4"], environ={})
    assert cfg.filter.languages == ["en", "de"]
    assert cfg.dedup.enabled is False
    assert cfg.pretrain.lr == pytest.approx(3e-4)


def test_off_and_on_are_words_not_booleans_in_sets_files_and_environment(tmp_path):
    (tmp_path / "my.yaml").write_text("extract:\n  date_search: off\n")
    from_file = load_config(config_file=tmp_path / "my.yaml", environ={})
    from_set = load_config(sets=["extract.date_search=off"], environ={})
    from_env = load_config(environ={"CORPUSFORGE__EXTRACT__DATE_SEARCH": "off"})
    assert from_file.extract.date_search == from_set.extract.date_search == from_env.extract.date_search == "off"
    assert load_config(sets=["dedup.enabled=False"], environ={}).dedup.enabled is False


@pytest.mark.parametrize(
    "sets, message",
    [
        (["tokenizer.vocab=5"], "unknown config key `tokenizer.vocab`: did you mean `tokenizer.vocab_size`?"),
        (["tokenizer.vocab_size=5"], "config key `tokenizer.vocab_size`: Input should be greater than or equal to 512"),
        (["pretrain.objective=diffusion"], "config key `pretrain.objective`"),
        (["filtr.enabled=false"], "did you mean `filter`?"),
        (["nonsense"], "write it as section.key=value"),
    ],
)
def test_wrong_key_or_value_names_the_key_and_the_fix(sets, message):
    with pytest.raises(ConfigError) as err:
        load_config(sets=sets, environ={})
    assert message in str(err.value)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_config(preset="huge", environ={})
