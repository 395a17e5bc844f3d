import csv
import sqlite3
import zipfile

import pytest

from helpers.questions import load_bank
from tools import decks

BANK = load_bank()


def notes_in(apkg, tmp_path):
    """(guid, fields) of every note in an Anki package (a zip holding an SQLite collection)."""
    with zipfile.ZipFile(apkg) as package:
        name = next(n for n in package.namelist() if n.startswith("collection.anki2"))
        database = tmp_path / f"{apkg.stem}.sqlite"
        database.write_bytes(package.read(name))
    with sqlite3.connect(database) as connection:
        return {guid: flds.split("\x1f") for guid, flds in connection.execute("select guid, flds from notes")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return decks.build_all(tmp_path_factory.mktemp("decks"))


def test_every_variant_is_written_as_apkg_and_csv(built):
    assert sorted(built) == sorted(f"mllab-questions-{v}{s}" for v in decks.VARIANTS for s in (".apkg", ".csv"))


@pytest.mark.parametrize("variant", decks.VARIANTS)
def test_the_apkg_holds_one_note_per_question_with_its_fields(built, variant, tmp_path):
    notes = notes_in(built[f"mllab-questions-{variant}.apkg"], tmp_path)
    assert len(notes) == len(BANK)
    by_id = {fields[0]: fields for fields in notes.values()}
    q = BANK[0]
    fields = by_id[q.id]
    assert len(fields) == len(decks.FIELDS) and fields[4] == q.cluster
    assert (q.question_en.strip()[:30] in fields[1]) == (variant != "zh")
    assert (q.question_zh.strip()[:10] in fields[1]) == (variant != "en")


def test_the_csv_matches_the_bank(built):
    with built["mllab-questions-bilingual.csv"].open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["Id"] for row in rows] == [q.id for q in BANK]
    assert rows[0]["Question"].startswith(BANK[0].question_en.strip()[:20])
    assert "<br>" not in rows[0]["Question"] and "\n" in rows[0]["Question"]


def test_ids_are_stable_across_rebuilds(built, tmp_path):
    again = decks.build_all(tmp_path / "again")
    for variant in decks.VARIANTS:
        name = f"mllab-questions-{variant}.apkg"
        assert set(notes_in(built[name], tmp_path)) == set(notes_in(again[name], tmp_path))
    assert decks.stable_id("deck", "en") == decks.stable_id("deck", "en") != decks.stable_id("deck", "zh")
    assert decks.note_guid(BANK[0], "en") != decks.note_guid(BANK[0], "zh")


def test_fields_escape_html_and_refuse_unknown_variants():
    import dataclasses

    q = dataclasses.replace(BANK[0], answer="use <b> & keep x < y", answer_zh="")
    assert decks.fields(q, "en")[2] == "use &lt;b&gt; &amp; keep x &lt; y"
    assert decks.fields(q, "zh")[2] == "use &lt;b&gt; &amp; keep x &lt; y"  # no Chinese answer: the English one
    with pytest.raises(ValueError, match="variant"):
        decks.fields(BANK[0], "fr")
