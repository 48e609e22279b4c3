"""Batch extraction: items, shards, batching plan, resume, unusable audio, merge, CLI."""
import shutil

import numpy as np
import pytest
from conftest import speech, tone, write_wav

from speakervlad.cli.main import main
from speakervlad.data.lists import Utterance, write_list
from speakervlad.data.padding import pad_with_non_speech
from speakervlad.embedding.directory import load_embeddings
from speakervlad.embedding.extraction import Item, extract, list_items, plan_batches
from speakervlad.embedding.shards import UNUSABLE_FILE, merge_shards, parse_shard, shard_dir, shard_items
from speakervlad.embedding.torch_embedder import load_model
from speakervlad.embedding.vad import VadOptions
from speakervlad.errors import ConfigError, EmbeddingError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Nine recordings of 0.4-2.8 s in speaker folders, plus two unusable files."""
    root = tmp_path_factory.mktemp("corpus") / "audio"
    for i in range(9):
        write_wav(root / f"spk{i % 3}" / f"utt{i}.wav", tone(0.4 + 0.3 * i, freq=110 + 25 * i, seed=i))
    (root / "spk0" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "spk1" / "empty.flac").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint)


@pytest.fixture(scope="module")
def reference(model, corpus, tmp_path_factory):
    """The unsharded extraction, and each usable file embedded alone."""
    out = tmp_path_factory.mktemp("ref") / "emb"
    result = extract(model, list_items(audio_root=corpus), out, jobs=2, batch_size=4)
    return result, load_embeddings(out)


def test_unsharded_output_matches_single_file_embedding(model, corpus, reference):
    result, emb = reference
    usable = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("utt*.wav"))
    assert emb.keys == usable  # rows in key order
    assert result.computed == 9 and result.embedded == 9
    expected = np.stack([model.embed(corpus / key) for key in usable])
    np.testing.assert_allclose(emb.get(usable), expected, atol=1e-5)
    assert emb.meta["model"] == model.fingerprint and emb.meta["unusable"] == 2


def test_unusable_files_are_counted_listed_and_skipped(reference):
    result, emb = reference
    assert sorted(key for key, _, _ in result.unusable) == ["spk0/broken.wav", "spk1/empty.flac"]
    lines = (result.out / UNUSABLE_FILE).read_text().splitlines()
    assert lines[0].startswith("#") and len(lines) == 3
    reasons = dict(line.split("\t")[::2] for line in lines[1:])
    assert "empty" in reasons["spk1/empty.flac"]
    assert "header" in reasons["spk0/broken.wav"]
    assert "spk0/broken.wav" not in emb


def test_two_shards_merge_to_the_unsharded_result(model, corpus, reference, tmp_path):
    _, expected = reference
    items = list_items(audio_root=corpus)
    first = extract(model, items, tmp_path / "emb", shard=(0, 2), jobs=1)
    assert not first.merged and first.out == shard_dir(tmp_path / "emb", 0, 2)
    second = extract(model, items, tmp_path / "emb", shard=(1, 2), jobs=1)
    assert second.merged and second.out == tmp_path / "emb"  # the last shard merges
    merged = load_embeddings(tmp_path / "emb")
    assert merged.keys == expected.keys
    np.testing.assert_allclose(np.asarray(merged.matrix), np.asarray(expected.matrix), atol=1e-5)
    assert "shard" not in merged.meta and merged.meta["unusable"] == 2
    assert len((tmp_path / "emb" / UNUSABLE_FILE).read_text().splitlines()) == 3
    again = extract(model, items, tmp_path / "emb", shard=(0, 2), jobs=1)  # re-run after the merge
    assert again.computed == 0 and again.merged


def test_shards_partition_the_sorted_keys():
    items = [Item(f"k{i:02d}", f"/a/k{i:02d}") for i in (5, 3, 9, 0, 7, 1, 4)]
    shards = [shard_items(items, i, 3) for i in range(3)]
    keys = [item.key for shard in shards for item in shard]
    assert sorted(keys) == sorted(item.key for item in items) and len(set(keys)) == len(keys)
    assert [item.key for item in shards[0]] == ["k00", "k04", "k09"]
    assert shard_items(list(reversed(items)), 1, 3) == shards[1]  # independent of input order
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "-1/2"):
        with pytest.raises(ConfigError, match="i/n"):
            parse_shard(bad)


def test_resume_skips_done_keys(model, corpus, reference, tmp_path, monkeypatch):
    _, expected = reference
    items = list_items(audio_root=corpus)
    calls = []
    original = model.embed_waveforms

    def counting(waves, batch_size=16):
        calls.append(len(waves))
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed mid-run
        return original(waves, batch_size)

    monkeypatch.setattr(model, "embed_waveforms", counting)
    with pytest.raises(KeyboardInterrupt):
        extract(model, items, tmp_path / "emb", batch_size=2, part_seconds=0.0, jobs=1)
    assert not (tmp_path / "emb" / "keys.txt").exists()
    assert (tmp_path / "emb" / ".parts").is_dir()  # the two finished batches were saved
    saved = calls[0] + calls[1]
    calls.clear()
    monkeypatch.setattr(model, "embed_waveforms", original)
    resumed = extract(model, items, tmp_path / "emb", batch_size=2, jobs=1)
    assert resumed.computed == 9 - saved and resumed.embedded == 9
    emb = load_embeddings(tmp_path / "emb")
    assert emb.keys == expected.keys and not (tmp_path / "emb" / ".parts").exists()
    np.testing.assert_allclose(np.asarray(emb.matrix), np.asarray(expected.matrix), atol=1e-5)
    assert extract(model, items, tmp_path / "emb", jobs=1).computed == 0  # all done: nothing recomputed


def test_output_of_another_model_is_refused(model, corpus, tmp_path):
    out = tmp_path / "emb"
    shutil.copytree(corpus / "spk2", tmp_path / "few")
    extract(model, list_items(audio_root=tmp_path / "few"), out, jobs=1)
    meta = out / "meta.json"
    meta.write_text(meta.read_text().replace(model.fingerprint, "0123456789abcdef"))
    with pytest.raises(EmbeddingError, match="another model"):
        extract(model, list_items(audio_root=tmp_path / "few"), out, jobs=1)


def test_vad_extraction_embeds_the_speech_and_keeps_its_rows_apart(model, tiny_checkpoint, tmp_path, capsys):
    root = tmp_path / "calls"
    for i in range(2):
        write_wav(root / f"call{i}.wav", pad_with_non_speech(speech(3.0, speaker=i), np.random.default_rng(i)).wave)
    write_wav(root / "hold.wav", 0.05 * np.random.default_rng(9).standard_normal(48000))  # no speech at all
    out = tmp_path / "emb"
    result = extract(model, list_items(audio_root=root), out, vad=VadOptions(), jobs=1)
    emb = load_embeddings(out)
    assert emb.keys == ["call0.wav", "call1.wav"] and emb.meta["vad"] == VadOptions().to_dict()
    for key, row in zip(emb.keys, emb.matrix):
        np.testing.assert_allclose(row, model.embed(root / key, vad=True), atol=1e-5)
    [(key, _, why)] = result.unusable
    assert key == "hold.wav" and "0.00 s of speech found" in why
    with pytest.raises(EmbeddingError, match="made with VAD"):
        extract(model, list_items(audio_root=root), out, jobs=1)  # without VAD: nothing of it is reused
    assert main(["embed", "--model", str(tiny_checkpoint), str(root / "call0.wav"), "--vad"]) == 0
    printed = capsys.readouterr().out.split("[")[1].split("]")[0]
    np.testing.assert_allclose(np.array(printed.split(), float), emb.matrix[0], atol=1e-4)


def test_plan_batches_longest_first_with_caps():
    items = [(Item(f"k{i}", ""), seconds) for i, seconds in enumerate([3.0, 10.0, 1.0, 2.0, 500.0, 2.5, 4.0])]
    batches = plan_batches(items, batch_size=3, max_batch_seconds=12.0, whole_seconds=100.0, max_padding=1.0)
    lengths = [[seconds for _, seconds in batch] for batch in batches]
    assert lengths == [[500.0], [10.0], [4.0, 3.0, 2.5], [2.0, 1.0]]


def test_plan_batches_caps_padding():
    items = [(Item(f"k{i}", ""), seconds) for i, seconds in enumerate([10.0, 9.9, 9.8, 8.0, 7.9, 4.0])]
    batches = plan_batches(items, batch_size=16, max_batch_seconds=1000.0, whole_seconds=100.0, max_padding=0.03)
    lengths = [[seconds for _, seconds in batch] for batch in batches]
    assert lengths == [[10.0, 9.9, 9.8], [8.0, 7.9], [4.0]]
    for batch in lengths:  # padded to the longest: at most 3 % more than the real audio
        assert batch[0] * len(batch) <= 1.03 * sum(batch)
    unlimited = plan_batches(items, batch_size=16, max_batch_seconds=1000.0, whole_seconds=100.0, max_padding=10.0)
    assert len(unlimited) == 1


def test_list_files_plain_and_tsv(tmp_path):
    (tmp_path / "keys.txt").write_text("# keys\na/1.wav\n\nb/2.wav\n")
    items = list_items(tmp_path / "keys.txt", audio_root="/data")
    assert items == [Item("a/1.wav", "/data/a/1.wav"), Item("b/2.wav", "/data/b/2.wav")]
    write_list(tmp_path / "train.tsv",
               [Utterance("a/1.wav", "a", "wav/a/1.wav"), Utterance("sp-a/1.wav", "a", "wav/a/1.wav", 1.1)])
    assert list_items(tmp_path / "train.tsv") == [Item("a/1.wav", str(tmp_path / "wav/a/1.wav"))]
    (tmp_path / "dup.txt").write_text("a.wav\na.wav\n")
    with pytest.raises(ConfigError, match="already listed on line 1"):
        list_items(tmp_path / "dup.txt")


def test_cli_extract_list_and_merge_round_trip(tiny_checkpoint, corpus, reference, tmp_path, capsys):
    _, expected = reference
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"{key}\n" for key in expected.keys[:5]) + "spk0/missing.wav\n")
    for i in range(2):  # as on two machines: separate folders, merged afterwards
        args = ["extract", "--model", str(tiny_checkpoint), "--list", str(keys), "--audio-root", str(corpus),
                "-o", str(tmp_path / f"machine{i}"), "--shard", f"{i}/2", "--jobs", "2"]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert "shard-0-of-2" in out and "skipped 1 unusable" in out
    shards = [shard_dir(tmp_path / f"machine{i}", i, 2) for i in range(2)]
    assert main(["extract-merge", *map(str, shards), "-o", str(tmp_path / "all")]) == 0
    assert "5 embeddings" in capsys.readouterr().out
    merged = load_embeddings(tmp_path / "all")
    assert merged.keys == expected.keys[:5]
    np.testing.assert_allclose(np.asarray(merged.matrix), expected.get(expected.keys[:5]), atol=1e-5)
    assert "no such file" in (tmp_path / "all" / UNUSABLE_FILE).read_text()
    with pytest.raises(EmbeddingError, match="every shard"):
        merge_shards(shards[:1], tmp_path / "partial")
    assert main(["extract", "--model", str(tiny_checkpoint), "-o", str(tmp_path / "x")]) == 2
    assert "--list" in capsys.readouterr().err
