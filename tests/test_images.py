from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hmlearn.data.images import (
    ImageDataset,
    guess_path_separator,
    image_splits,
    load_pixels,
    read_image_table,
)
from hmlearn.errors import DataFormatError, HierarchyError, HMLError
from hmlearn.hierarchy import Hierarchy


def png(path: Path, size=(8, 8), colour=(10, 20, 30), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def folder(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        png(tmp_path / "img" / name)
    return tmp_path


# ---------------------------------------------------------------------------------- ImageDataset
def test_image_dataset_checks_shapes_and_subsets():
    h = Hierarchy.from_paths(["a/b", "c"])
    Y = h.encode([["a/b"], ["c"], ["a"]])
    data = ImageDataset([Path("/x/1.png"), "/x/2.png", "/x/3.png"], Y, h, partition=["train", "test", "train"],
                        name="t")
    assert data.ids == ["/x/1.png", "/x/2.png", "/x/3.png"] and isinstance(data.paths[1], Path)
    part = data.subset([2, 0])
    assert part.ids == ["/x/3.png", "/x/1.png"] and list(part.partition) == ["train", "train"]
    np.testing.assert_array_equal(part.Y, Y[[2, 0]])
    assert len(data.subset(np.array([True, False, True]))) == 2
    assert "3 images" in repr(data) and "train 2" in repr(data) and "test 1" in repr(data)
    with pytest.raises(ValueError, match="do not match"):
        ImageDataset([Path("/x/1.png")], Y, h)
    with pytest.raises(ValueError, match="hierarchy has"):
        ImageDataset([Path("/x/1.png")], Y[:1, :2], h)
    with pytest.raises(ValueError, match="partition"):
        ImageDataset([Path("/x/1.png")], Y[:1], h, partition=["a", "b"])


# ---------------------------------------------------------------------------------- layouts
def test_paths_layout_builds_the_hierarchy_closes_labels_and_merges_repeated_images(folder):
    table = write(folder / "t.csv", "image,labels,partition\nimg/a.png,sand/rippled;biota/stars,train\n"
                                    "img/b.png,rock,test\nimg/a.png,rock,train\nimg/c.png,,train\n")
    data = read_image_table(table)
    h = data.hierarchy
    assert h.nodes == ("root", "biota", "rock", "sand", "biota/stars", "sand/rippled")
    assert data.ids == ["img/a.png", "img/b.png", "img/c.png"]  # a.png's two rows merged
    assert data.paths[0] == (folder / "img" / "a.png").resolve()
    assert h.labels_of(data.Y[0]) == ["root", "biota", "rock", "sand", "biota/stars", "sand/rippled"]
    assert h.labels_of(data.Y[2]) == []
    assert h.is_closed(data.Y) and list(data.partition) == ["train", "test", "train"] and data.name == "t"


def test_path_separators_are_guessed_by_count_and_normalised(folder):
    assert guess_path_separator(["A > Prawns / shrimps", "A > B", "A"]) == " > "
    assert guess_path_separator(["01.02", "01"]) == "." and guess_path_separator(["x", "y"]) == "/"
    table = write(folder / "t.csv", "file,labels\nimg/a.png,Biota > Prawns / shrimps\n"
                                    "img/b.png,Bedforms >  Waves (>10cm height)\n")
    h = read_image_table(table).hierarchy
    assert {"Biota > Prawns / shrimps", "Bedforms > Waves (>10cm height)"} <= set(h.nodes)  # spaces normalised
    given = Hierarchy.from_paths(["a/b"])  # labels written with spaces match a given hierarchy's nodes
    table = write(folder / "u.csv", "image,labels\nimg/a.png,a / b\n")
    assert given.labels_of(read_image_table(table, hierarchy=given).Y[0]) == ["root", "a", "a/b"]


def test_levels_layout_ends_a_path_at_its_first_empty_cell(folder):
    table = write(folder / "t.csv", "image,Level1,Level2,Level3\nimg/a.png,sand,rippled,fine\nimg/b.png,rock,,\n"
                                    "img/a.png,biota,,\n")
    data = read_image_table(table)
    assert data.hierarchy.nodes == ("root", "biota", "rock", "sand", "sand/rippled", "sand/rippled/fine")
    assert data.hierarchy.labels_of(data.Y[0]) == ["root", "biota", "sand", "sand/rippled", "sand/rippled/fine"]
    bad = write(folder / "bad.csv", "image,level1,level2,level3\nimg/a.png,sand,,fine\n")
    with pytest.raises(DataFormatError, match=r"bad.csv: row 1: column 'level3' holds 'fine' but 'level2' is empty"):
        read_image_table(bad)


CATAMI = """CATAMI
[BIOTA] > Biota,
[BIOTA] > Biota > Echinoderms,
[BIOTA] > Biota > Echinoderms > Sea urchins,
[BIOTA] > Biota > Crustacea > Prawns / shrimps / mysids,
"[BIOTA] > Bedforms > Waves (>10cm height), with a comma",
[BIOTA] > Biota,
"""


def test_benthicnet_layout_indexes_the_hierarchy_table_from_zero(tmp_path):
    for site, name in (("s1", "x.jpg"), ("s1", "y.jpg"), ("s2", "z.jpg")):
        png(tmp_path / "imgs" / "ds" / site / name)
    hierarchy = write(tmp_path / "catami.csv", CATAMI)
    table = write(tmp_path / "t.csv", "dataset,site,image,partition,catami_biota,biota_mask\n"
                                      'ds,s1,x.jpg,train,"[0, 1, 2]",[]\nds,s1,y,test,[3],"[1]"\n'
                                      'ds,s2,z.JPG,train,"[4, 5]",[]\n')
    data = read_image_table(table, tmp_path / "imgs", hierarchy=hierarchy)
    h = data.hierarchy
    assert h.separator == " > "  # not '/', though some names hold it
    assert data.ids == ["ds/s1/x.jpg", "ds/s1/y", "ds/s2/z.JPG"]
    assert [p.name for p in data.paths] == ["x.jpg", "y.jpg", "z.jpg"]  # missing extension, other extension
    assert h.labels_of(data.Y[0])[-1] == "[BIOTA] > Biota > Echinoderms > Sea urchins"
    assert "[BIOTA] > Biota > Crustacea > Prawns / shrimps / mysids" in h.labels_of(data.Y[1])
    assert set(h.labels_of(data.Y[2])) >= {"[BIOTA] > Bedforms > Waves (>10cm height), with a comma",
                                          "[BIOTA] > Biota"}  # row 5 repeats row 0: the same node
    assert h.is_closed(data.Y) and list(data.partition) == ["train", "test", "train"]
    out_of_range = write(tmp_path / "o.csv", "dataset,site,image,catami_biota\nds,s1,x.jpg,[0]\nds,s1,y,\"[2, 6]\"\n")
    with pytest.raises(HierarchyError, match=r"o.csv: row 2, column 'catami_biota': node index 6 is beyond the 6 "
                                             r"paths of .*catami.csv \(indices count from 0\)"):
        read_image_table(out_of_range, tmp_path / "imgs", hierarchy=hierarchy)
    with pytest.raises(DataFormatError, match="holds node indices .* pass hierarchy="):
        read_image_table(table, tmp_path / "imgs")


def test_parquet_with_list_cells_reads_like_csv(folder):
    frame = pd.DataFrame({"image": ["img/a.png", "img/b.png"], "labels": [["x/y", "z"], ["z"]],
                          "split": ["train", "test"]})
    frame.to_parquet(folder / "t.parquet", index=False)
    data = read_image_table(folder / "t.parquet")
    assert data.hierarchy.labels_of(data.Y[0]) == ["root", "x", "z", "x/y"] and list(data.partition) == ["train", "test"]


def test_labels_outside_a_given_hierarchy_name_the_label_and_row(folder):
    hierarchy = write(folder / "h.txt", "sand/flat\nrock\n")
    table = write(folder / "t.csv", "image,labels\nimg/a.png,sand/flat\nimg/b.png,sand/rippled\n")
    with pytest.raises(HierarchyError, match=r"t.csv: row 2, column 'labels': label 'sand/rippled' is not a node of "
                                             r"the hierarchy in .*h.txt"):
        read_image_table(table, hierarchy=hierarchy)
    levels = write(folder / "l.csv", "image,level1,level2\nimg/a.png,rock,\nimg/b.png,rock,boulders\n")
    with pytest.raises(HierarchyError, match=r"row 2, column 'level1..level2': label 'rock/boulders' is not a node"):
        read_image_table(levels, hierarchy=hierarchy)


def test_missing_images_are_listed_ten_at_most_with_the_count(tmp_path):
    rows = "".join(f"gone_{i:02d}.png,a\n" for i in range(12))
    png(tmp_path / "here.png")
    table = write(tmp_path / "t.csv", "image,labels\nhere.png,a\n" + rows)
    with pytest.raises(DataFormatError) as error:
        read_image_table(table)
    message = str(error.value)
    assert "12 of 13 image files do not exist under" in message and "images_dir=" in message
    assert "row 2: gone_00.png" in message and "gone_09.png" in message and "gone_10.png" not in message
    assert "... and 2 more" in message and len(message.splitlines()) == 1
    with pytest.raises(DataFormatError, match=r"none of the 13 image files exists under .*elsewhere"):
        read_image_table(table, tmp_path / "elsewhere")


@pytest.mark.parametrize(
    ("text", "options", "pattern"),
    [
        ("image,labels\n", {}, r"t.csv: no data rows below the header"),
        ("", {}, r"t.csv: the file is empty"),
        ("image,labels\nimg/a.png,x\n", {"image_column": "file"},
         r"t.csv: no image column 'file'; the columns are image, labels"),
        ("image,labels\nimg/a.png,x\n", {"labels_column": "catami"}, r"no labels column 'catami'"),
        ("image,labels\nimg/a.png,x\n", {"split_column": "fold"}, r"no split column 'fold'"),
        ("image,tags\nimg/a.png,x\n", {}, r"t.csv: no labels column \(labels, catami_\*, or level1"),
        ("picture,labels\nimg/a.png,x\n", {}, r"t.csv: no image column \(named one of image, file"),
        ("image,path,labels\nimg/a.png,img/a.png,x\n", {},
         r"columns 'image', 'path' could each name the image files; pass image_column="),
        ("image,catami_biota,catami_substrate\nimg/a.png,[1],[2]\n", {},
         r"several label columns \(catami_biota, catami_substrate\); pass labels_column="),
        ("image,labels,level1\nimg/a.png,x,y\n", {}, r"could be column 'labels' or the level columns level1"),
        ("image,labels\n,x\n", {}, r"t.csv: row 1, column 'image' is empty"),
        ("image,labels\nimg/a.png,\n", {}, r"column 'labels' holds no labels"),
        ("image,labels\nimg/a.png,a//b\n", {}, r"t.csv: row 1, column 'labels': label path 'a//b' has an empty"),
        ("image,labels,partition\nimg/a.png,x,train\nimg/a.png,y,test\n", {},
         r"rows 1 and 2 name the same image 'img/a.png' with 'partition' 'train' and 'test'"),
    ],
)
def test_bad_tables_give_one_clear_message(folder, text, options, pattern):
    table = write(folder / "t.csv", text)
    with pytest.raises(HMLError, match=pattern) as error:
        read_image_table(table, **options)
    assert len(str(error.value).splitlines()) == 1


def test_label_listed_without_its_ancestor_warns_or_is_refused_when_strict(folder):
    h = Hierarchy.from_edges([("r", "a"), ("r", "c"), ("a", "b"), ("c", "b")])  # a DAG: naming b states neither a nor c
    table = write(folder / "t.csv", "image,labels\nimg/a.png,b\n")
    with pytest.warns(UserWarning, match="closed upwards"):
        data = read_image_table(table, hierarchy=h)
    assert h.labels_of(data.Y[0]) == ["a", "b", "c", "r"]
    with pytest.raises(HierarchyError, match="listed without its ancestor"):
        read_image_table(table, hierarchy=h, strict=True)


# ---------------------------------------------------------------------------------- pixels
def test_load_pixels_resizes_crops_and_converts_every_mode(tmp_path):
    wide = Image.new("RGB", (64, 32), (255, 0, 0))
    wide.paste((0, 0, 255), (32, 0, 64, 32))  # left half red, right half blue
    wide.save(tmp_path / "wide.png")
    png(tmp_path / "grey.png", (20, 40), 100, "L")
    png(tmp_path / "rgba.png", (16, 16), (0, 200, 0, 50), "RGBA")
    palette = Image.new("P", (24, 24), 0)
    palette.putpalette([0, 0, 0, 250, 250, 0] + [0] * 762)
    palette.paste(1, (0, 0, 24, 24))
    palette.save(tmp_path / "palette.png", transparency=0)
    Image.fromarray(np.full((12, 12), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    png(tmp_path / "photo.jpg", (300, 200), (40, 80, 120))
    paths = [tmp_path / n for n in ("wide.png", "grey.png", "rgba.png", "palette.png", "deep.png", "photo.jpg")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Pillow warning about palettes with transparency
        pixels = load_pixels(paths, 16)
    assert pixels.shape == (6, 3, 16, 16) and pixels.dtype == np.uint8
    crop = pixels[0]  # centre square of the wide image: its left 8 columns red, right 8 blue
    assert np.all(crop[0, :, :7] == 255) and np.all(crop[2, :, :7] == 0)
    assert np.all(crop[2, :, 9:] == 255) and np.all(crop[0, :, 9:] == 0)
    assert np.all(pixels[1] == 100)
    assert np.all(pixels[2].reshape(3, -1).T == (0, 200, 0))
    assert np.all(pixels[3].reshape(3, -1).T == (250, 250, 0))
    assert np.all(pixels[4] == 255)
    assert np.all(np.abs(pixels[5].reshape(3, -1).T.astype(int) - (40, 80, 120)) <= 3)  # JPEG, draft-decoded
    assert load_pixels([], 8).shape == (0, 3, 8, 8)


def test_load_pixels_lists_unreadable_files_at_once(tmp_path):
    good = png(tmp_path / "good.png")
    (tmp_path / "text.png").write_bytes(b"not an image at all")
    (tmp_path / "cut.png").write_bytes((tmp_path / "good.png").read_bytes()[:40])
    missing = tmp_path / "missing.png"
    with pytest.raises(DataFormatError) as error:
        load_pixels([good, tmp_path / "text.png", tmp_path / "cut.png", missing], 8)
    message = str(error.value)
    assert message.startswith("3 of 4 image files cannot be read: ") and len(message.splitlines()) == 1
    assert "text.png (not an image file Pillow can read)" in message and "cut.png (" in message
    assert "missing.png (no such file)" in message and "good.png" not in message
    bad = [tmp_path / f"gone_{i}.png" for i in range(13)]
    with pytest.raises(DataFormatError, match=r"13 of 13 .*gone_9.png .*; \.\.\. and 3 more"):
        load_pixels(bad, 8)


def test_load_pixels_cache_is_reused_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    from hmlearn.data import images

    paths = [png(tmp_path / f"{i}.png", (10, 10), (i, i, i)) for i in range(3)]
    first = load_pixels(paths, 8, cache=True)
    cached = list((Path(os.environ["HMLEARN_CACHE"]) / "pixels").glob("*.npy"))
    assert len(cached) >= 1
    with monkeypatch.context() as patch:  # a second load must not decode a single image
        patch.setattr(images, "_pixels", lambda *args: pytest.fail("decoded although the cache holds the images"))
        np.testing.assert_array_equal(load_pixels(paths, 8, cache=True, progress=True), first)
    png(paths[1], (10, 10), (77, 77, 77))
    os.utime(paths[1], ns=(1, 1))  # another modification time, whatever the clock's resolution
    assert np.all(load_pixels(paths, 8, cache=True)[1] == 77)
    np.testing.assert_array_equal(load_pixels(paths, 8), load_pixels(paths, 8, cache=True))


# ---------------------------------------------------------------------------------- splits
def test_image_splits_follow_the_partition_or_a_stratified_seeded_split(folder):
    h = Hierarchy.from_paths(["a", "b/c"])
    labels = [["a"], ["b/c"]] * 20
    paths = [folder / "img" / "a.png"] * 40
    named = ImageDataset(paths, h.encode(labels), h, [str(i) for i in range(40)],
                         np.array(["Train", "validation", "TEST", "train"] * 10), "t")
    splits = image_splits(named)
    assert list(splits) == ["train", "valid", "test"] and [len(s) for s in splits.values()] == [20, 10, 10]
    plain = ImageDataset(paths, h.encode(labels), h, [str(i) for i in range(40)], None, "t")
    splits = image_splits(plain, test_fraction=0.25, valid_fraction=0.25, seed=0)
    assert [len(s) for s in splits.values()] == [20, 10, 10]
    assert sorted(i for s in splits.values() for i in s.ids) == sorted(plain.ids)
    assert [s.ids for s in image_splits(plain, 0.25, 0.25, seed=0).values()] == [s.ids for s in splits.values()]
    assert list(image_splits(plain)) == ["train", "test"]
    odd = ImageDataset(paths[:2], h.encode(labels[:2]), h, partition=["train", "holdout"], name="t")
    with pytest.raises(HMLError, match=r"t: partition value\(s\) 'holdout' are none of train"):
        image_splits(odd)
    with pytest.raises(HMLError, match="valid fraction"):
        image_splits(plain, test_fraction=0.5, valid_fraction=0.5)
