"""Dataset source registry and resolution: raw folder, cache, verified downloads (no network is touched)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from recsys_gnn.data import sources
from recsys_gnn.data.errors import ChecksumError, ConfigError, DatasetNotFoundError, RawFileMismatchError
from recsys_gnn.data.sources import (
    SOURCES,
    MemberDigest,
    RemoteFile,
    Source,
    cache_root,
    file_digest,
    raw_root,
    resolve,
    verify_checksum,
)

EXPECTED_SOURCES = {
    "ml-latest-small",
    "ml-100k",
    "ml-1m",
    "hetrec2011-lastfm-2k",
    "amazon2018",
    "unisrec-scientific",
    "nemig",
    "mind-small",
    "mind-large",
    "mind-demo",
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty raw and cache roots in tmp_path, pointed at by the environment; unverified downloads off."""
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    raw.mkdir()
    monkeypatch.setenv("RECSYS_GNN_RAW", str(raw))
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(cache))
    monkeypatch.delenv("RECSYS_GNN_ALLOW_UNVERIFIED", raising=False)
    return raw, cache


def write_files(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


def make_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, Path]) -> list[str]:
    """Replace the downloader by a copy of local files keyed by URL; returns the list of URLs fetched."""
    fetched: list[str] = []

    def fake_download(url: str, dest: Path, *, timeout: float = 60.0) -> None:
        fetched.append(url)
        if url not in files:
            raise requests.ConnectionError(f"no route to {url}")
        shutil.copyfile(files[url], dest)

    monkeypatch.setattr(sources, "download_file", fake_download)
    return fetched


def register(monkeypatch: pytest.MonkeyPatch, source: Source) -> Source:
    monkeypatch.setitem(SOURCES, source.name, source)
    return source


def zip_source(name: str, checksum: str | None, algo: str = "md5") -> Source:
    """A toy archive source; its members have no official copy to verify (``verify=False``)."""
    members = ("ratings.dat", "movies.dat")
    url = f"https://example.org/{name}.zip"
    return Source(
        name,
        (RemoteFile(url, f"{name}.zip", checksum, algo, True, members=members),),
        members,
        name,
        verify=False,
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


def test_registry_lists_every_dataset() -> None:
    assert EXPECTED_SOURCES <= set(SOURCES)
    for name, src in SOURCES.items():
        assert src.name == name and src.members and src.license and src.homepage.startswith("https://")
        for member in src.members:
            rf = src.remote_for(member)
            assert rf is not None, f"{name}: no download provides {member}"
            assert rf.url.startswith("https://")


def test_published_checksums() -> None:
    (ml100k,) = SOURCES["ml-100k"].files
    (ml1m,) = SOURCES["ml-1m"].files
    (small,) = SOURCES["ml-latest-small"].files
    assert (ml100k.url, ml100k.algo, ml100k.checksum) == (
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "md5",
        "0e33842e24a9c977be4e0107933c0723",
    )
    assert (ml1m.algo, ml1m.checksum) == ("md5", "c4d9eecfca2ab87c1945afe126590906")
    assert small.checksum is None  # not known: downloads must be explicitly allowed
    assert SOURCES["ml-1m"].archive_root == "ml-1m"
    for name in ("mind-small", "mind-large", "mind-demo"):
        assert all(rf.checksum is None and rf.extract for rf in SOURCES[name].files)


def test_mind_layout() -> None:
    small = SOURCES["mind-small"]
    assert small.members == ("train/behaviors.tsv", "train/news.tsv", "dev/behaviors.tsv", "dev/news.tsv")
    assert (
        small.remote_for("dev/news.tsv").url
        == "https://mind201910small.blob.core.windows.net/release/MINDsmall_dev.zip"
    )
    assert SOURCES["mind-large"].remote_for("test/behaviors.tsv").url.endswith("/MINDlarge_test.zip")
    assert SOURCES["mind-demo"].remote_for("train/news.tsv").url == (
        "https://recodatasets.z20.web.core.windows.net/newsrec/MINDdemo_train.zip"
    )


def test_amazon_category_urls_from_templates() -> None:
    amazon = SOURCES["amazon2018"]
    listed = amazon.remote_for("Gift_Cards_5.json.gz")
    assert listed.checksum == "41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25"
    base = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"
    derived = {
        m: amazon.remote_for(m)
        for m in ("Beauty_5.json.gz", "meta_Beauty.json.gz", "Beauty.csv", "Beauty.json.gz")
    }
    assert {m: rf.url for m, rf in derived.items()} == {
        "Beauty_5.json.gz": f"{base}/categoryFilesSmall/Beauty_5.json.gz",
        "meta_Beauty.json.gz": f"{base}/metaFiles2/meta_Beauty.json.gz",
        "Beauty.csv": f"{base}/categoryFilesSmall/Beauty.csv",
        "Beauty.json.gz": f"{base}/categoryFiles/Beauty.json.gz",
    }
    assert all(rf.checksum is None for rf in derived.values())
    assert amazon.remote_for("notes.txt") is None


def test_remote_file_rejects_malformed_checksums() -> None:
    with pytest.raises(ConfigError, match="not a lower-case md5 hex digest"):
        RemoteFile("https://x/a.zip", "a.zip", "abc", "md5", True)
    with pytest.raises(ConfigError, match="checksum algorithm 'sha1'"):
        RemoteFile("https://x/a.zip", "a.zip", None, "sha1", True)  # type: ignore[arg-type]


def test_unknown_name_lists_known_sources() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown dataset source 'ml-20m'; known sources: \[.*'ml-100k'.*\]"
    ):
        resolve("ml-20m")


def test_member_paths_must_stay_inside(env: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="must be a relative path"):
        resolve("ml-1m", ["../ml-100k/u.data"], download=False)


# ---------------------------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------------------------


def test_roots_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_GNN_RAW", raising=False)
    monkeypatch.delenv("RECSYS_GNN_CACHE", raising=False)
    assert raw_root() is None
    assert cache_root() == Path.home() / ".cache" / "recsys_gnn"
    monkeypatch.setenv("RECSYS_GNN_RAW", "")
    assert raw_root() is None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_GNN_RAW", "data")
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(tmp_path / "c"))
    assert raw_root() == tmp_path / "data"
    assert cache_root() == tmp_path / "c"


def test_resolves_from_raw_folder(env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    raw, cache = env
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")  # made-up files, not the official ones
    write_files(
        raw / "ml-1m", {"ratings.dat": "1::1::5::1\n", "movies.dat": "1::A (1995)::Drama\n", "users.dat": ""}
    )
    assert resolve("ml-1m", download=False) == raw / "ml-1m"
    assert resolve("ml-1m", ["movies.dat"], download=False) == raw / "ml-1m"
    assert resolve("ml-1m", "movies.dat", download=False) == raw / "ml-1m"  # a single name, not its letters
    assert not cache.exists()


def test_falls_back_to_cache(env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    raw, cache = env
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")  # made-up files, not the official ones
    write_files(raw / "ml-1m", {"ratings.dat": "1::1::5::1\n"})  # incomplete raw copy
    write_files(cache / "raw" / "ml-1m", {"ratings.dat": "", "movies.dat": "", "users.dat": ""})
    assert resolve("ml-1m", download=False) == cache / "raw" / "ml-1m"
    # a request the raw copy satisfies still prefers it
    assert resolve("ml-1m", ["ratings.dat"], download=False) == raw / "ml-1m"


def test_missing_everywhere_message(env: tuple[Path, Path]) -> None:
    raw, cache = env
    write_files(raw / "ml-1m", {"ratings.dat": ""})
    with pytest.raises(DatasetNotFoundError) as err:
        resolve("ml-1m", download=False)
    msg = str(err.value)
    assert "'ml-1m'" in msg
    assert f"{raw / 'ml-1m'} (RECSYS_GNN_RAW): missing movies.dat" in msg  # users.dat is not read
    assert f"{cache / 'raw' / 'ml-1m'} (cache): folder does not exist" in msg
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in msg
    assert "RECSYS_GNN_RAW=<folder>" in msg


def test_missing_with_raw_unset_says_so(env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_GNN_RAW")
    fetched = serve(monkeypatch, {})
    with pytest.raises(DatasetNotFoundError) as err:
        resolve("mind-small", download=False)
    assert "RECSYS_GNN_RAW is not set" in str(err.value)
    assert "MINDsmall_train.zip" in str(err.value) and "MINDsmall_dev.zip" in str(err.value)
    assert fetched == []


# ---------------------------------------------------------------------------------------------------------------
# Downloads (served from tmp_path through a monkeypatched downloader)
# ---------------------------------------------------------------------------------------------------------------


def test_download_verify_extract(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, cache = env
    archive = make_zip(
        tmp_path / "toy.zip",
        {"toy/ratings.dat": "1::1::5::1\n", "toy/movies.dat": "1::A::B\n", "toy/README": "x"},
    )
    register(monkeypatch, zip_source("toy", md5(archive)))
    fetched = serve(monkeypatch, {"https://example.org/toy.zip": archive})
    folder = resolve("toy")
    assert folder == cache / "raw" / "toy"
    assert (folder / "ratings.dat").read_text() == "1::1::5::1\n"
    assert sorted(p.name for p in folder.iterdir()) == ["README", "movies.dat", "ratings.dat"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    assert fetched == ["https://example.org/toy.zip"]
    assert resolve("toy") == folder and len(fetched) == 1  # second call: found in the cache


def test_checksum_mismatch_deletes_and_never_extracts(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cache = env
    archive = make_zip(tmp_path / "toy.zip", {"toy/ratings.dat": "x", "toy/movies.dat": "y"})
    register(monkeypatch, zip_source("toy", "0" * 32))
    serve(monkeypatch, {"https://example.org/toy.zip": archive})
    extracted: list[Path] = []
    real_extract = sources._safe_extract
    monkeypatch.setattr(sources, "_safe_extract", lambda a, t: (extracted.append(a), real_extract(a, t)))
    with pytest.raises(ChecksumError) as err:
        resolve("toy")
    msg = str(err.value)
    assert "toy.zip" in msg and "expected " + "0" * 32 in msg and f"got {md5(archive)}" in msg
    assert "deleted" in msg
    assert extracted == []
    leftovers = [p for p in (cache / "raw").rglob("*")] if (cache / "raw").exists() else []
    assert leftovers == []


def test_unverified_download_refused_unless_allowed(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    archive = make_zip(tmp_path / "toy.zip", {"toy/ratings.dat": "x", "toy/movies.dat": "y"})
    register(monkeypatch, zip_source("toy", None))
    fetched = serve(monkeypatch, {"https://example.org/toy.zip": archive})
    with pytest.raises(ChecksumError, match="no published checksum.*RECSYS_GNN_ALLOW_UNVERIFIED=1"):
        resolve("toy")
    assert fetched == []
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")
    with caplog.at_level(logging.WARNING):
        folder = resolve("toy")
    assert (folder / "movies.dat").read_text() == "y"
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"sha256={sha} (unverified)" in caplog.text


def test_amazon_other_category_needs_opt_in(env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = serve(monkeypatch, {})
    with pytest.raises(
        ChecksumError, match=r"Downloading them needs Beauty_5\.json\.gz \(https://.*no published checksum"
    ):
        resolve("amazon2018", ["Beauty_5.json.gz", "meta_Beauty.json.gz"])
    assert fetched == []


def test_plain_file_download_into_subfolder(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cache = env
    payload = tmp_path / "behaviors.tsv"
    payload.write_text("1\tU1\tN1\tN2-1\n")
    member = "en/user_data/behaviors.tsv"
    url = "https://example.org/data/user_data/en/behaviors.tsv"
    rf = RemoteFile(url, member, file_digest(payload, "sha256"))
    register(monkeypatch, Source("plain", (rf,), (member,), verify=False))
    serve(monkeypatch, {url: payload})
    assert resolve("plain") == cache / "raw" / "plain"
    assert (cache / "raw" / "plain" / member).read_text() == payload.read_text()


def test_archives_extract_into_split_folders(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MIND zips are flat; each lands in its own split folder."""
    train = make_zip(tmp_path / "t.zip", {"behaviors.tsv": "train-b", "news.tsv": "train-n"})
    dev = make_zip(tmp_path / "d.zip", {"behaviors.tsv": "dev-b", "news.tsv": "dev-n"})
    files = tuple(
        RemoteFile(f"https://example.org/{z.name}", z.name, file_digest(z, "sha256"), "sha256", True,
                   members=(f"{split}/behaviors.tsv", f"{split}/news.tsv"), extract_to=split)
        for z, split in ((train, "train"), (dev, "dev"))
    )  # fmt: skip
    members = ("train/behaviors.tsv", "train/news.tsv", "dev/behaviors.tsv", "dev/news.tsv")
    register(monkeypatch, Source("news", files, members, verify=False))
    fetched = serve(monkeypatch, {"https://example.org/t.zip": train, "https://example.org/d.zip": dev})
    folder = resolve("news", ["dev/news.tsv"])
    assert (folder / "dev" / "news.tsv").read_text() == "dev-n"
    assert fetched == ["https://example.org/d.zip"]  # only the archive that provides the request
    folder = resolve("news")
    assert (folder / "train" / "behaviors.tsv").read_text() == "train-b"
    assert fetched == ["https://example.org/d.zip", "https://example.org/t.zip"]


def test_raw_folder_is_never_written(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, cache = env
    write_files(raw / "toy", {"ratings.dat": "partial copy\n"})
    archive = make_zip(tmp_path / "toy.zip", {"toy/ratings.dat": "full", "toy/movies.dat": "full"})
    register(monkeypatch, zip_source("toy", md5(archive)))
    serve(monkeypatch, {"https://example.org/toy.zip": archive})
    before = snapshot(raw)
    modes = {p: p.stat().st_mode for p in [raw, *raw.rglob("*")]}
    for p in modes:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        assert resolve("toy") == cache / "raw" / "toy"
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert snapshot(raw) == before
    assert (raw / "toy" / "ratings.dat").read_text() == "partial copy\n"


def test_network_failure_reports_url(env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, zip_source("toy", "0" * 32))
    serve(monkeypatch, {})
    with pytest.raises(
        DatasetNotFoundError, match=r"download of https://example\.org/toy\.zip failed: ConnectionError"
    ):
        resolve("toy")


def test_archive_lacking_a_member(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_zip(tmp_path / "toy.zip", {"toy/ratings.dat": "x"})
    register(monkeypatch, zip_source("toy", md5(archive)))
    serve(monkeypatch, {"https://example.org/toy.zip": archive})
    with pytest.raises(DatasetNotFoundError, match=r"downloaded toy\.zip but they lack movies\.dat"):
        resolve("toy")


def test_archive_escaping_its_folder_is_refused(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cache = env
    archive = make_zip(
        tmp_path / "toy.zip", {"toy/ratings.dat": "x", "toy/movies.dat": "y", "../../evil.txt": "z"}
    )
    register(monkeypatch, zip_source("toy", md5(archive)))
    serve(monkeypatch, {"https://example.org/toy.zip": archive})
    with pytest.raises(DatasetNotFoundError, match="would extract outside"):
        resolve("toy")
    assert not list(tmp_path.rglob("evil.txt"))


def test_no_url_known_for_member(env: tuple[Path, Path]) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"no download URL is known for notes\.txt"):
        resolve("ml-1m", ["notes.txt"])


# ---------------------------------------------------------------------------------------------------------------
# Checksums and the downloader itself
# ---------------------------------------------------------------------------------------------------------------


def test_verify_checksum(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"recsys")
    verify_checksum(f, hashlib.md5(b"recsys").hexdigest(), "md5")
    verify_checksum(f, hashlib.sha256(b"recsys").hexdigest().upper(), "sha256")
    with pytest.raises(
        ChecksumError, match=rf"a\.bin: sha256 checksum mismatch: expected {'f' * 64}, got [0-9a-f]{{64}}"
    ):
        verify_checksum(f, "f" * 64, "sha256")
    assert f.exists()  # the caller decides what to delete
    with pytest.raises(ConfigError, match="checksum algorithm 'crc32'"):
        verify_checksum(f, "0", "crc32")


class FakeResponse:
    def __init__(self, body: bytes, length: int | None) -> None:
        self.body = body
        self.headers = {} if length is None else {"Content-Length": str(length)}

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def raise_for_status(self) -> None:
        return None

    def iter_content(self, chunk_size: int) -> list[bytes]:
        return [self.body[i : i + 100] for i in range(0, len(self.body), 100)]


def fake_get(body: bytes, length: int | None) -> Callable[..., FakeResponse]:
    def get(url: str, *, stream: bool, timeout: float) -> FakeResponse:
        assert stream and timeout > 0
        return FakeResponse(body, length)

    return get


def test_download_file_logs_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    body = os.urandom(1000)
    monkeypatch.setattr(requests, "get", fake_get(body, len(body)))
    with caplog.at_level(logging.INFO, logger="recsys_gnn.data.sources"):
        sources.download_file("https://example.org/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == body
    percents = [int(m) for m in re.findall(r"f\.bin: (\d+)%", caplog.text)]
    assert percents == list(range(10, 101, 10))


def test_download_file_detects_truncation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requests, "get", fake_get(b"x" * 500, 1000))
    with pytest.raises(Exception, match="download truncated: got 500 of 1000 bytes"):
        sources.download_file("https://example.org/f.bin", tmp_path / "f.bin")


# ---------------------------------------------------------------------------------------------------------------
# The real raw folder (RECSYS_GNN_RAW): member lists and checksums match the staged files
# ---------------------------------------------------------------------------------------------------------------


def _real_raw() -> Path:
    value = os.environ.get("RECSYS_GNN_RAW")
    if not value:
        pytest.skip("RECSYS_GNN_RAW is not set: real raw folder unavailable")
    return Path(value).resolve()


@pytest.mark.parametrize("name", sorted(EXPECTED_SOURCES))
def test_real_raw_folder_resolves(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _real_raw()
    if not (raw / name).is_dir():
        pytest.skip(f"{raw / name} is not staged")
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RECSYS_GNN_ALLOW_UNVERIFIED", raising=False)
    assert resolve(name, download=False) == raw / name  # every member verified against its digest


STAGED_WITH_DIGESTS = [
    "ml-latest-small",
    "ml-100k",
    "hetrec2011-lastfm-2k",
    "amazon2018",
    "unisrec-scientific",
    "nemig",
]


@pytest.mark.parametrize("name", STAGED_WITH_DIGESTS)
def test_real_every_recorded_digest_matches_the_staged_file(name: str) -> None:
    raw = _real_raw()
    if not (raw / name).is_dir():
        pytest.skip(f"{raw / name} is not staged")
    digests = SOURCES[name].digests
    assert set(SOURCES[name].members) <= set(digests)
    for member, d in digests.items():
        path = raw / name / member
        assert path.stat().st_size == d.size, member
        assert file_digest(path, "sha256") == d.sha256, member


@pytest.mark.parametrize("name", STAGED_WITH_DIGESTS)
def test_real_truncated_copy_of_a_staged_dataset_is_refused(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of the staged files with the first member cut at half its bytes (mid-line) is refused."""
    raw = _real_raw()
    if not (raw / name).is_dir():
        pytest.skip(f"{raw / name} is not staged")
    members = SOURCES[name].members
    copy = tmp_path / "raw" / name
    for m in members:
        (copy / m).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw / name / m, copy / m)
    data = (raw / name / members[0]).read_bytes()
    (copy / members[0]).write_bytes(data[: len(data) // 2])
    monkeypatch.setenv("RECSYS_GNN_RAW", str(tmp_path / "raw"))
    monkeypatch.setenv("RECSYS_GNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RECSYS_GNN_ALLOW_UNVERIFIED", raising=False)
    with pytest.raises(RawFileMismatchError) as err:
        resolve(name, download=False)
    msg = str(err.value)
    expected = f"{copy / members[0]}: expected the official {members[0]} of {len(data):,} bytes, found "
    assert expected + f"{len(data) // 2:,} bytes (shorter: truncated?)" in msg
    assert "RECSYS_GNN_ALLOW_UNVERIFIED=1" in msg
    assert msg.count("\n  - ") == 1  # only the cut file is named


@pytest.mark.parametrize("name", ["amazon2018", "unisrec-scientific", "nemig"])
def test_real_plain_files_match_registered_checksums(name: str) -> None:
    raw = _real_raw()
    if not (raw / name).is_dir():
        pytest.skip(f"{raw / name} is not staged")
    checked = 0
    for rf in SOURCES[name].files:
        if rf.checksum is not None and not rf.extract:
            verify_checksum(raw / name / rf.filename, rf.checksum, rf.algo)
            checked += 1
    assert checked >= 4


# ---------------------------------------------------------------------------------------------------------------
# Verification of local member files against recorded official digests
# ---------------------------------------------------------------------------------------------------------------

TOY_FILES = {"ratings.dat": "1::1::5::1\n2::1::4::2\n", "movies.dat": "1::A (1995)::Drama\n"}


def verified_source(monkeypatch: pytest.MonkeyPatch, files: dict[str, str] = TOY_FILES) -> Source:
    """A source 'vtoy' whose digests are those of ``files``."""
    digests = {
        m: MemberDigest(len(t.encode()), hashlib.sha256(t.encode()).hexdigest()) for m, t in files.items()
    }
    rf = RemoteFile("https://example.org/vtoy.zip", "vtoy.zip", None, "md5", True, members=tuple(files))
    return register(monkeypatch, Source("vtoy", (rf,), tuple(files), "vtoy", digests=digests))


def test_matching_copy_is_verified_and_its_digest_remembered(
    env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, cache = env
    verified_source(monkeypatch)
    write_files(raw / "vtoy", TOY_FILES)
    hashed: list[str] = []
    real = sources.file_digest
    monkeypatch.setattr(sources, "file_digest", lambda p, a: (hashed.append(Path(p).name), real(p, a))[1])
    assert resolve("vtoy", download=False) == raw / "vtoy"
    assert sorted(hashed) == ["movies.dat", "ratings.dat"]
    memo = cache / sources.VERIFIED_CACHE_FILE
    assert memo.is_file() and not list((raw / "vtoy").glob("*.json"))  # never written into the raw folder
    assert resolve("vtoy", download=False) == raw / "vtoy"
    assert len(hashed) == 2  # second run: (path, size, mtime) unchanged, nothing re-hashed
    # same size, other bytes, new mtime: hashed again and refused
    (raw / "vtoy" / "movies.dat").write_text("1::B (1995)::Drama\n")
    os.utime(raw / "vtoy" / "movies.dat", ns=(1, 1))
    with pytest.raises(RawFileMismatchError, match=r"movies\.dat: sha256 expected [0-9a-f]{64}, found"):
        resolve("vtoy", download=False)
    assert len(hashed) == 3


def test_truncated_copy_is_refused_by_size_before_hashing(
    env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, _ = env
    verified_source(monkeypatch)
    write_files(raw / "vtoy", {**TOY_FILES, "ratings.dat": "1::1::5::1\n2::1"})  # cut mid-line
    monkeypatch.setattr(sources, "file_digest", lambda p, a: pytest.fail(f"hashed {p}"))
    with pytest.raises(RawFileMismatchError) as err:
        resolve("vtoy", ["ratings.dat"], download=False)
    msg = str(err.value)
    path = raw / "vtoy" / "ratings.dat"
    assert (
        f"{path}: expected the official ratings.dat of 22 bytes, found 15 bytes (shorter: truncated?)" in msg
    )
    assert "set RECSYS_GNN_ALLOW_UNVERIFIED=1 to run on them unverified" in msg


def test_member_without_recorded_digest_needs_the_opt_in(
    env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    raw, _ = env
    write_files(raw / "ml-1m", {"ratings.dat": "1::1::5::1\n", "movies.dat": "1::A (1995)::Drama\n"})
    with pytest.raises(RawFileMismatchError, match=r"ratings\.dat: no recorded size/sha256 of the official"):
        resolve("ml-1m", download=False)
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")
    with caplog.at_level(logging.WARNING):
        assert resolve("ml-1m", download=False) == raw / "ml-1m"
    assert "UNVERIFIED (RECSYS_GNN_ALLOW_UNVERIFIED=1)" in caplog.text and "movies.dat" in caplog.text


def test_mismatch_is_a_warning_with_the_opt_in(
    env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    raw, _ = env
    verified_source(monkeypatch)
    write_files(raw / "vtoy", {**TOY_FILES, "movies.dat": "x\n"})
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")
    with caplog.at_level(logging.WARNING):
        assert resolve("vtoy", download=False) == raw / "vtoy"
    assert "expected the official movies.dat of 19 bytes, found 2 bytes" in caplog.text


def test_downloaded_members_are_verified_too(
    env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cache = env
    verified_source(monkeypatch)
    archive = make_zip(tmp_path / "vtoy.zip", {"vtoy/ratings.dat": "1::1::5::1\n", "vtoy/movies.dat": "x\n"})
    serve(monkeypatch, {"https://example.org/vtoy.zip": archive})
    monkeypatch.setenv("RECSYS_GNN_ALLOW_UNVERIFIED", "1")  # the toy zip has no published checksum
    assert resolve("vtoy") == cache / "raw" / "vtoy"  # allowed, with warnings
    monkeypatch.delenv("RECSYS_GNN_ALLOW_UNVERIFIED")
    with pytest.raises(
        RawFileMismatchError, match=r"movies\.dat: expected the official movies\.dat of 19 bytes"
    ):
        resolve("vtoy")


def test_unread_member_is_not_required(env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """ml-latest-small's links.csv is never read: a copy without it still resolves (then fails on digests)."""
    raw, _ = env
    write_files(raw / "ml-latest-small", {"ratings.csv": "a\n", "movies.csv": "b\n", "tags.csv": "c\n"})
    with pytest.raises(RawFileMismatchError) as err:
        resolve("ml-latest-small", download=False)
    assert "links.csv" not in str(err.value)
    assert SOURCES["ml-100k"].members == ("u.data", "u.item", "u.genre")
    assert "user_friends.dat" not in SOURCES["hetrec2011-lastfm-2k"].members


def test_missing_member_is_named_when_its_download_is_refused(
    env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, cache = env
    write_files(raw / "ml-latest-small", {"ratings.csv": "a\n", "tags.csv": "c\n"})
    fetched = serve(monkeypatch, {})
    with pytest.raises(ChecksumError) as err:
        resolve("ml-latest-small")
    msg = str(err.value)
    assert f"movies.csv missing from {raw / 'ml-latest-small'} (RECSYS_GNN_RAW)" in msg
    assert "ml-latest-small.zip" in msg and "RECSYS_GNN_ALLOW_UNVERIFIED=1" in msg
    assert fetched == []


def test_registry_digests_agree_with_download_checksums() -> None:
    for src in SOURCES.values():
        for rf in src.files:
            if not rf.extract and rf.checksum is not None and rf.algo == "sha256":
                assert src.digests[rf.filename].sha256 == rf.checksum, (src.name, rf.filename)
    with pytest.raises(ConfigError, match="expected size >= 0 and a sha256"):
        MemberDigest(-1, "0" * 64)


def test_optional_members_are_verified_when_present(env: tuple[Path, Path]) -> None:
    """ml-100k's fold files are read only with a fold: not required, but a cut copy present is refused."""
    raw, _ = env
    src = SOURCES["ml-100k"]
    assert "u1.base" in src.optional and "u1.base" not in src.members
    write_files(
        raw / "ml-100k", {"u.data": "1\t1\t5\t1\n", "u.item": "x\n", "u.genre": "y\n", "u1.base": "z\n"}
    )
    with pytest.raises(RawFileMismatchError) as err:
        resolve("ml-100k", download=False)
    assert "u1.base: expected the official u1.base of 1,586,544 bytes, found 2 bytes" in str(err.value)
    assert "u2.base" not in str(err.value)  # absent optional files are not required
