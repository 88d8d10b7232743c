"""2-D plots: files written with the expected labels, the SVD map's geometry, OOV handling, CLI."""
from __future__ import annotations

import re

import numpy as np
import pytest

from analysis.plot import neighbours, plot_words, read_groups
from embeddings import store
from wordspace.cli import main
from embeddings.vectors import Embeddings

PLANTED = ["king", "queen", "man", "woman", "italy", "germany", "mussolini", "hitler"]


def svg_texts(path) -> list[str]:
    """The text of every <text> element (labels stay text: svg.fonttype = 'none')."""
    return [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text(encoding="utf-8"))]


def test_words_plot_as_svg_with_labels_title_and_equal_aspect(planted, tmp_path):
    out = tmp_path / "words.svg"
    result = plot_words(planted, out, words=PLANTED, model_name="planted-model")
    assert out.stat().st_size > 1000
    texts = svg_texts(out)
    for word in PLANTED:
        assert word in texts
    title = next(t for t in texts if t.startswith("planted-model"))
    assert "explained variance" in title and "fit on the 8 words shown" in title
    assert result.missing == [] and result.groups == {"words": PLANTED}
    assert 0 < result.explained_variance[1] <= result.explained_variance[0] <= 1
    assert sum(result.explained_variance) <= 1 + 1e-6


def test_png_output_and_unknown_extension(planted, tmp_path):
    out = tmp_path / "sub" / "words.png"
    plot_words(planted, out, words=PLANTED[:4])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_words(planted, tmp_path / "words.pdf", words=PLANTED)


def test_analogy_arrows_keep_the_parallelogram(tmp_path):
    """The map is linear (centring + projection of unit vectors), so b - a = d - c between
    unit vectors gives equal arrows a->b and c->d in the picture."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(12, 6)).astype(np.float32)
    vectors[:4] = 0
    vectors[:4, :3] = [[0.6, 0.8, 0], [0.6, -0.8, 0], [0, 0.8, 0.6], [0, -0.8, 0.6]]  # unit, b - a = d - c
    words = ["italy", "mussolini", "germany", "hitler"] + [f"n{i}" for i in range(8)]
    emb = Embeddings(words, vectors)
    out = tmp_path / "analogy.svg"
    result = plot_words(emb, out, analogies=[("italy", "mussolini", "germany", "hitler")], words=["n1", "n2"])
    xy = {w: np.array(p) for w, p in result.coordinates.items()}
    np.testing.assert_allclose(xy["mussolini"] - xy["italy"], xy["hitler"] - xy["germany"], atol=1e-5)
    assert np.linalg.norm(xy["mussolini"] - xy["italy"]) > 0.5
    texts = svg_texts(out)
    assert "italy:mussolini :: germany:hitler" in texts and "mussolini" in texts
    assert (out.read_text(encoding="utf-8").count("<path") > 8)  # markers, arrows, frame


def test_same_words_same_picture(planted, tmp_path):
    a = plot_words(planted, tmp_path / "a.svg", words=PLANTED)
    b = plot_words(planted, tmp_path / "b.svg", words=PLANTED)
    assert a.coordinates == b.coordinates
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_fit_on_vocab_projects_onto_a_map_of_the_top_words(planted, tmp_path):
    selected = plot_words(planted, tmp_path / "s.svg", words=PLANTED[:4])
    vocab = plot_words(planted, tmp_path / "v.svg", words=PLANTED[:4], fit_on="vocab", fit_top=30)
    assert "fit on the top 30 words" in vocab.title
    assert selected.coordinates != vocab.coordinates
    with pytest.raises(ValueError, match="fit_on"):
        plot_words(planted, tmp_path / "x.svg", words=PLANTED, fit_on="corpus")


def test_neighbours_are_the_brute_force_top_k(planted, tmp_path):
    unit = planted.vectors / np.linalg.norm(planted.vectors, axis=1, keepdims=True)
    scores = unit @ unit[planted.index_of("king")]
    expected = [planted.words[i] for i in np.argsort(-scores) if planted.words[i] != "king"][:5]
    assert neighbours(planted, "king", 5) == expected
    result = plot_words(planted, tmp_path / "n.svg", neighbors="king", k=5)
    assert result.groups == {"king": ["king"], "5 nearest": expected}
    assert set(expected) <= set(svg_texts(tmp_path / "n.svg"))


def test_group_file_with_oov_words_plots_the_rest(planted, tmp_path):
    groups = tmp_path / "groups.txt"
    groups.write_text("# demo\nroyals: king, queen zzunknown\npeople: man woman\ncountries: italy germany\n",
                      encoding="utf-8")
    parsed = read_groups(groups)
    assert parsed == {"royals": ["king", "queen", "zzunknown"], "people": ["man", "woman"],
                      "countries": ["italy", "germany"]}
    result = plot_words(planted, tmp_path / "g.svg", groups=parsed)
    assert result.missing == ["zzunknown"]
    texts = svg_texts(tmp_path / "g.svg")
    assert {"royals", "people", "countries", "king", "germany"} <= set(texts)  # legend and labels
    assert "zzunknown" not in texts


def test_nothing_to_plot_is_a_clear_error(planted, tmp_path):
    with pytest.raises(ValueError, match="none of the words to plot is in the vocabulary"):
        plot_words(planted, tmp_path / "x.svg", words=["nope", "nada"])
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_words(planted, tmp_path / "x.svg")
    with pytest.raises(ValueError, match="no vectors"):
        plot_words(Embeddings([], np.zeros((0, 3), np.float32)), tmp_path / "x.svg", words=["a"])
    bad = tmp_path / "bad-groups.txt"
    bad.write_text("royals:\n", encoding="utf-8")
    with pytest.raises(ValueError, match=":1: group 'royals' has no words"):
        read_groups(bad)
    assert not (tmp_path / "x.svg").exists()


def test_plot_command(planted, models_dir, tmp_path, capsys):
    store.save_model(models_dir, "planted", planted)
    out = tmp_path / "cli.svg"
    code = main(["plot", "planted", "--words", "king,queen,man,woman,zzz", "--analogy",
                 "italy,mussolini,germany,hitler", "-o", str(out), "--models", str(models_dir)])
    captured = capsys.readouterr()
    assert code == 0
    assert "wrote" in captured.out and "zzz" in captured.err
    texts = svg_texts(out)
    assert {"king", "hitler", "italy:mussolini :: germany:hitler"} <= set(texts)
    assert any(t.startswith("planted: TruncatedSVD") for t in texts)
    code = main(["plot", "planted", "--words", "zzz", "-o", str(out), "--models", str(models_dir)])
    assert code == 1
    assert "wordspace: error: none of the words" in capsys.readouterr().err
