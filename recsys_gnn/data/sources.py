"""Where every dataset's raw files come from, and how to find (or fetch) them on this machine.

:data:`SOURCES` lists, for each dataset the framework reads, the official download URLs, their published
checksums, and the member files a reader needs. :func:`resolve` returns the folder holding those members,
searching in order:

1. ``$RECSYS_GNN_RAW/<name>/`` (a read-only copy of the raw files; never written to),
2. ``$RECSYS_GNN_CACHE/raw/<name>/`` (default ``~/.cache/recsys_gnn/raw/<name>/``),
3. a download into that cache folder: each file is fetched into a temporary folder, verified against its
   published checksum, and only then extracted/moved into place, so a failed or tampered download never
   leaves partial files where a reader would find them.

Files without a published checksum are refused unless ``RECSYS_GNN_ALLOW_UNVERIFIED=1`` is set.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from recsys_gnn.data.errors import ChecksumError, ConfigError, DataError, DatasetNotFoundError

log = logging.getLogger(__name__)

Algo = Literal["md5", "sha256"]

RAW_ENV = "RECSYS_GNN_RAW"
CACHE_ENV = "RECSYS_GNN_CACHE"
ALLOW_UNVERIFIED_ENV = "RECSYS_GNN_ALLOW_UNVERIFIED"

_DIGEST_LEN = {"md5": 32, "sha256": 64}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Attributes:
        url: official download URL.
        filename: for a plain file, its path relative to the dataset folder (where it is stored); for an
            archive, the name it is downloaded under (it is deleted after extraction).
        checksum: published hex digest, or None when none is published (see :data:`ALLOW_UNVERIFIED_ENV`).
        algo: digest algorithm of ``checksum``.
        extract: whether ``filename`` is an archive (zip or tar) to unpack.
        members: for an archive, the dataset-relative paths it yields once extracted (e.g. ``train/news.tsv``
            when ``extract_to="train"``); ignored for plain files, which yield ``filename``.
        extract_to: dataset-relative folder the archive's content (below the source's ``archive_root``)
            lands in; "" = the dataset folder itself.
    """

    url: str
    filename: str
    checksum: str | None
    algo: Algo = "sha256"
    extract: bool = False
    members: tuple[str, ...] = ()
    extract_to: str = ""

    def __post_init__(self) -> None:
        if self.algo not in _DIGEST_LEN:
            raise ConfigError(
                f"{self.filename}: checksum algorithm {self.algo!r}; expected one of {list(_DIGEST_LEN)}"
            )
        if self.checksum is not None and not re.fullmatch(
            rf"[0-9a-f]{{{_DIGEST_LEN[self.algo]}}}", self.checksum
        ):
            raise ConfigError(
                f"{self.filename}: checksum {self.checksum!r} is not a lower-case {self.algo} hex digest "
                f"({_DIGEST_LEN[self.algo]} hex characters)"
            )

    @property
    def provides(self) -> tuple[str, ...]:
        """Dataset-relative member paths this file yields."""
        return self.members if self.extract else (self.filename,)


@dataclass(frozen=True)
class UrlTemplate:
    """Derives a download URL for a member that is not listed in ``Source.files``.

    Used where a dataset is a family of files (e.g. Amazon 2018 categories): ``pattern`` is a regular expression
    with named groups matched against the whole member name, and ``url`` a :meth:`str.format` template using
    those groups. Derived files have no known checksum.
    """

    pattern: str
    url: str

    def remote_for(self, member: str) -> RemoteFile | None:
        """The :class:`RemoteFile` for ``member``, or None if ``member`` does not match ``pattern``."""
        m = re.fullmatch(self.pattern, member)
        if m is None:
            return None
        return RemoteFile(url=self.url.format(**m.groupdict()), filename=member, checksum=None)


@dataclass(frozen=True)
class Source:
    """A dataset's origin.

    Attributes:
        name: dataset key (folder name under ``RECSYS_GNN_RAW`` and the cache).
        files: the official files, with checksums where published.
        members: dataset-relative paths that must exist for the dataset to count as present (the default
            set :func:`resolve` checks; readers may ask for a subset or for other files).
        archive_root: folder inside the archives that holds the members ("" = archive root).
        license: short summary of the terms of use.
        homepage: page describing the dataset and its terms.
        templates: URL templates for members not listed in ``files``.
    """

    name: str
    files: tuple[RemoteFile, ...]
    members: tuple[str, ...]
    archive_root: str = ""
    license: str = ""
    homepage: str = ""
    templates: tuple[UrlTemplate, ...] = field(default=())

    def remote_for(self, member: str) -> RemoteFile | None:
        """The file that provides ``member``: a listed file first, then a URL template; None if neither."""
        for rf in self.files:
            if member in rf.provides:
                return rf
        for tpl in self.templates:
            rf = tpl.remote_for(member)
            if rf is not None:
                return rf
        return None

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(rf.url for rf in self.files)


# --------------------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------------------

_GROUPLENS = "https://files.grouplens.org/datasets"
_GROUPLENS_LICENSE = (
    "GroupLens MovieLens terms: research use; cite Harper & Konstan (2015, ACM TiiS 5(4):19); no endorsement; "
    "no commercial use without permission"
)


def _movielens(
    name: str, md5: str | None, members: tuple[str, ...], redistribution: str, homepage: str
) -> Source:
    return Source(
        name=name,
        files=(
            RemoteFile(
                f"{_GROUPLENS}/movielens/{name}.zip", f"{name}.zip", md5, "md5", True, members=members
            ),
        ),
        members=members,
        archive_root=name,
        license=f"{_GROUPLENS_LICENSE}; {redistribution}",
        homepage=homepage,
    )


_ML100K_MEMBERS = ("u.data", "u.item", "u.genre", "u.user", "u.occupation", "u.info") + tuple(
    f"u{k}.{part}" for k in (1, 2, 3, 4, 5, "a", "b") for part in ("base", "test")
)

_HETREC_MEMBERS = (
    "artists.dat",
    "tags.dat",
    "user_artists.dat",
    "user_friends.dat",
    "user_taggedartists.dat",
)

_AMAZON_BASE = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"
# sha256 of the files in RECSYS_GNN_RAW/amazon2018 (see its PROVENANCE.md); UCSD publishes no checksums.
_AMAZON_SHA256: dict[str, str | None] = {
    "Gift_Cards_5.json.gz": "41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25",
    # The staged copy is the older metaFiles/ release; the metaFiles2/ file at the official URL differs in
    # bytes (image field names), so its digest is unknown.
    "meta_Gift_Cards.json.gz": None,
    "Magazine_Subscriptions_5.json.gz": "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2",
    "meta_Magazine_Subscriptions.json.gz": "147cb78dac0f9ce04849b196e2e13cad6a504bff45d53500b7a1fe8121d91595",
    "Magazine_Subscriptions.csv": "6e1b48a78f7d4713a3f15abb028d5a1258e3c06d04b258b9d478f55d057a6696",
}
# Order matters: the first pattern that matches a member wins (``X_5.json.gz`` also matches ``X.json.gz``).
_AMAZON_TEMPLATES = (
    UrlTemplate(r"meta_(?P<category>\w+)\.json\.gz", _AMAZON_BASE + "/metaFiles2/meta_{category}.json.gz"),
    UrlTemplate(r"(?P<category>\w+)_5\.json\.gz", _AMAZON_BASE + "/categoryFilesSmall/{category}_5.json.gz"),
    UrlTemplate(r"(?P<category>\w+)\.csv", _AMAZON_BASE + "/categoryFilesSmall/{category}.csv"),
    UrlTemplate(r"(?P<category>\w+)\.json\.gz", _AMAZON_BASE + "/categoryFiles/{category}.json.gz"),
)


def _amazon_files() -> tuple[RemoteFile, ...]:
    out = []
    for filename, digest in _AMAZON_SHA256.items():
        derived = next(rf for t in _AMAZON_TEMPLATES if (rf := t.remote_for(filename)) is not None)
        out.append(RemoteFile(derived.url, filename, digest, "sha256"))
    return tuple(out)


# UniSRec distributes its processed benchmark through Google Drive only; these are the bytes staged in
# RECSYS_GNN_RAW, from a pinned commit of the CoWPiRec repository (see PROVENANCE.md).
_UNISREC_BASE = "https://raw.githubusercontent.com/ysh-1998/CoWPiRec/db47560c2364650d22afc77080717287daec5079/dataset/Scientific"
_UNISREC_SHA256 = {
    "Scientific.item2index": "896ab1017508cf20834d3d0537da9f8f624324223a835af272a98ba16f8c087a",
    "Scientific.user2index": "f0162b1a3a0c6b7e816f86208e7b36f65d6787923126f9558fbc6d368e4c4974",
    "Scientific.text": "95887e6bda76e54f59b71b566320520d5da74e21d3b6ff8f20bfb6e8e84aa831",
    "Scientific.train.inter": "7284f6489d956fa20c9b64ffc84569264320edba5c3bc2fcb22db2ea083a1163",
    "Scientific.valid.inter": "5f37c84d3b54617cdc46638c89dfe8741c7efc4987acd5eb64de2cbd4311f46c",
    "Scientific.test.inter": "546da7e5f44002b4518d7fd58066684bc09613f76c240914e16976d57cfe7083",
}

# The authors' repository stores data/<kind>/<lang>/<file>; the dataset folder uses <lang>/<kind>/<file>.
_NEMIG_BASE = (
    "https://raw.githubusercontent.com/andreeaiana/nemig/9eb1a36ce9b3ccf673cad66a238739d661bb7b23/data"
)
_NEMIG_SHA256 = {
    "de/cache/disambiguated_publishers.csv": "a1fbdafa616fea7a84cb8f760d25a188f528ad205917ee15fd465ca8be21a2c9",
    "de/cache/political_orientation_annotations.csv": "8fc6c7a9ca45bfb09dd91ba01f1449cd504208666141a51c0bbaa340cc669024",
    "de/cache/sentiment_annotations.csv": "727050cedfcf81d32da135771da5e282be7700096f8e8bcbba6dbe53bdf83ad6",
    "de/cache/subtopic_annotations.csv": "9b7a946aa2c7a2bc6c13e4772d22b5c3962b07b29b1c2c4d3590b4b8da7d6e95",
    "de/kg/nemig_de_base-instances_content_literals.nt.bz2": "840eb6dd909543328dc67db61424b53410d6866e708c94e7dd01d5cdad673497",
    "de/kg/nemig_de_base-instances_content_mapping.nt.bz2": "7cda3dfff6535332a9929d7b81ddb6a6833fdc6011fdafc32fb15aedb602ce34",
    "de/kg/nemig_de_base-instances_metadata_literals.nt.bz2": "d33f6c406168e46beae81a782e019e3dc1c831b0da205b7cf8600c23311040ee",
    "de/kg/nemig_de_base-instances_metadata_resources.nt.bz2": "40e5841369bb8a709dbf298810a0e6543ea3353fd6c0c97e3fcd9fb998794556",
    "de/kg/nemig_de_base-instances_political_orientation_mapping.nt.bz2": (
        "3acf3182544c6b1c30a54475e8cf85b61f4147ce7fbe1e82052f38c9d7c584eb"
    ),
    "de/kg/nemig_de_base-instances_sentiment_mapping.nt.bz2": "e26a27f0087795667b923f63fbb0d7f6098f0aea7bfd5cf660cbb2971c236ec6",
    "de/kg/nemig_de_base-instances_subtopic_mapping.nt.bz2": "41e8b4b753dc359b62d4ff6d218e77b3e4907a2c4ebeb2c3e7e8caf100cd305e",
    "de/kg/nemig_de_base-instances_types.nt.bz2": "fee77b29b905c2f164d230316a69d42575adecd4a4a1e9ae70f81750eb368954",
    "de/user_data/behaviors.tsv": "d0582d8fb7b00237ab93ca9858e2f929020733f8dd53ac76c3aff5b4f8bbe87b",
    "de/user_data/demographics_politics.tsv": "35dadbecfd069f17380e7da944f3f06f7efe558985cf39d8982603fd77527692",
    "en/cache/disambiguated_publishers.csv": "f6e72ba78d3d29ebb5fe71cc2556fc50cb7aa8831f5d0f51ea86d01476d3e0c4",
    "en/cache/political_orientation_annotations.csv": "9c141e8da13fbc73036d98b1cb423f7af1989f89492eb842a3f2ec8991c525ab",
    "en/cache/sentiment_annotations.csv": "2fc03823d8439757a263bb1b0a16dff4195d2fe18e2785a602dca70c691fd4b3",
    "en/cache/subtopic_annotations.csv": "aa6e3e29f4d7c89d26729347085ee7898412a51a446a2f3e13d6a495ce42830d",
    "en/kg/nemig_en_base-instances_content_literals.nt.bz2": "39e249a6e0fb782c63984c9bba813fcc58bef89ae9ef1b180cd8ceefbad25607",
    "en/kg/nemig_en_base-instances_content_mapping.nt.bz2": "610724a88202412c0cbbb3a2de484aaec34b3823a88cbe230b2ec9e477320eb8",
    "en/kg/nemig_en_base-instances_metadata_literals.nt.bz2": "fad877c1e4f15408be863dca536d1720c96e3e85dc5db7628e22bf4a5a3e8ffa",
    "en/kg/nemig_en_base-instances_metadata_resources.nt.bz2": "978ddf63fe4d3caaa3358451a9cf2f18f946167cfbcd502289ebb349ced3ac07",
    "en/kg/nemig_en_base-instances_political_orientation_mapping.nt.bz2": (
        "e216f473129077c99e144142b2bf3d4ec5eea859b86187c55998fb6ee3d513f8"
    ),
    "en/kg/nemig_en_base-instances_sentiment_mapping.nt.bz2": "fc3011e7977e73f12ad8eaf63752e6ba4424cdee5e1dd3faa4fae2ba2ce0072e",
    "en/kg/nemig_en_base-instances_subtopic_mapping.nt.bz2": "22f1bd090a26109162eadfea6d613b929283288b2584304cbd70348582171773",
    "en/kg/nemig_en_base-instances_types.nt.bz2": "88997c0c1db10ebd735ecea17931afe2bf0934bcc2bd1a027acf925c1386e828",
    "en/user_data/behaviors.tsv": "0e8efcd9a70de6e5a206a8028460ebed76e9b41baf4cafb015adc12e7f89cca9",
    "en/user_data/demographics_politics.tsv": "6930f867c276d64137283af30393e84c5255f5b8f5d8662cfaafb70484a1d635",
}


def _nemig_url(member: str) -> str:
    lang, kind, filename = member.split("/")
    return f"{_NEMIG_BASE}/{kind}/{lang}/{filename}"


_MIND_FILES = ("behaviors.tsv", "news.tsv", "entity_embedding.vec", "relation_embedding.vec")
_MIND_LICENSE = "Microsoft Research License Terms: non-commercial research use; cite Wu et al., ACL 2020"


def _mind(
    name: str, base: str, prefix: str, splits: tuple[tuple[str, str], ...], required: tuple[str, ...]
) -> Source:
    """``splits``: (zip suffix, folder) pairs, e.g. ("train", "train"); ``required``: folders in ``members``."""
    files = tuple(
        RemoteFile(
            f"{base}/{prefix}_{suffix}.zip",
            f"{prefix}_{suffix}.zip",
            None,  # Microsoft publishes no checksums for MIND
            "sha256",
            True,
            members=tuple(f"{folder}/{f}" for f in _MIND_FILES),
            extract_to=folder,
        )
        for suffix, folder in splits
    )
    members = tuple(f"{folder}/{f}" for folder in required for f in ("behaviors.tsv", "news.tsv"))
    return Source(name, files, members, "", _MIND_LICENSE, "https://msnews.github.io/")


_MIND_BLOB = "https://mind201910small.blob.core.windows.net/release"

SOURCES: dict[str, Source] = {
    "ml-latest-small": _movielens(
        "ml-latest-small",
        # GroupLens' published zip MD5 could not be matched against any retrievable copy (see PROVENANCE.md).
        None,
        ("ratings.csv", "movies.csv", "tags.csv", "links.csv"),
        "redistribution allowed under the same terms",
        "https://grouplens.org/datasets/movielens/latest/",
    ),
    "ml-100k": _movielens(
        "ml-100k",
        "0e33842e24a9c977be4e0107933c0723",
        _ML100K_MEMBERS,
        "no redistribution without permission",
        "https://grouplens.org/datasets/movielens/100k/",
    ),
    "ml-1m": _movielens(
        "ml-1m",
        "c4d9eecfca2ab87c1945afe126590906",
        ("ratings.dat", "movies.dat", "users.dat"),
        "no redistribution without permission",
        "https://grouplens.org/datasets/movielens/1m/",
    ),
    "hetrec2011-lastfm-2k": Source(
        "hetrec2011-lastfm-2k",
        (
            RemoteFile(
                f"{_GROUPLENS}/hetrec2011/hetrec2011-lastfm-2k.zip",
                "hetrec2011-lastfm-2k.zip",
                # Not published by GroupLens; the digest third-party loaders verify against (see PROVENANCE.md).
                "6738f48195667ff03caaab4d32ca9a3133d8cc026b7c3cdaf6ce1010e913c59c",
                "sha256",
                True,
                members=_HETREC_MEMBERS + ("user_taggedartists-timestamps.dat", "readme.txt"),
            ),
        ),
        _HETREC_MEMBERS,
        "",
        "Last.fm data for non-commercial use only; cite Cantador, Brusilovsky & Kuflik (HetRec 2011)",
        "https://grouplens.org/datasets/hetrec-2011/",
    ),
    "amazon2018": Source(
        "amazon2018",
        _amazon_files(),
        tuple(_AMAZON_SHA256),
        "",
        "Amazon Review Data (2018): research use, cite Ni, Li & McAuley (EMNLP 2019); no redistribution",
        "https://nijianmo.github.io/amazon/index.html",
        _AMAZON_TEMPLATES,
    ),
    "unisrec-scientific": Source(
        "unisrec-scientific",
        tuple(RemoteFile(f"{_UNISREC_BASE}/{f}", f, d, "sha256") for f, d in _UNISREC_SHA256.items()),
        tuple(_UNISREC_SHA256),
        "",
        "Derived from Amazon Review Data (2018): research use; cite Ni et al. (EMNLP 2019) and Hou et al. (KDD 2022)",
        "https://github.com/RUCAIBox/UniSRec",
    ),
    "nemig": Source(
        "nemig",
        tuple(RemoteFile(_nemig_url(f), f, d, "sha256") for f, d in _NEMIG_SHA256.items()),
        tuple(_NEMIG_SHA256),
        "",
        "CC BY-NC-SA 4.0 (data); cite Iana et al., NeMig, INRA@RecSys 2023 (doi:10.5281/zenodo.7908392)",
        "https://github.com/andreeaiana/nemig",
    ),
    "mind-small": _mind(
        "mind-small", _MIND_BLOB, "MINDsmall", (("train", "train"), ("dev", "dev")), ("train", "dev")
    ),
    "mind-large": _mind(
        "mind-large",
        _MIND_BLOB,
        "MINDlarge",
        (("train", "train"), ("dev", "dev"), ("test", "test")),
        # The test split has no click labels; readers that want it ask for test/* explicitly.
        ("train", "dev"),
    ),
    "mind-demo": _mind(
        "mind-demo",
        "https://recodatasets.z20.web.core.windows.net/newsrec",
        "MINDdemo",
        (("train", "train"), ("dev", "dev")),
        ("train", "dev"),
    ),
}


# --------------------------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------------------------


def raw_root() -> Path | None:
    """Folder of read-only raw dataset copies, from ``$RECSYS_GNN_RAW`` (None when unset or empty)."""
    value = os.environ.get(RAW_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_root() -> Path:
    """Writable cache folder, from ``$RECSYS_GNN_CACHE`` (default ``~/.cache/recsys_gnn``)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else Path.home() / ".cache" / "recsys_gnn"


def allow_unverified() -> bool:
    """Whether downloads without a published checksum are allowed (``RECSYS_GNN_ALLOW_UNVERIFIED=1``)."""
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "").strip() == "1"


def get_source(name: str) -> Source:
    """The registered :class:`Source` called ``name``; :class:`ConfigError` listing known names otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown dataset source {name!r}; known sources: {sorted(SOURCES)}") from None


# --------------------------------------------------------------------------------------------------------------
# Checksums and downloads
# --------------------------------------------------------------------------------------------------------------


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of ``path`` computed with ``algo`` ("md5" or "sha256")."""
    if algo not in _DIGEST_LEN:
        raise ConfigError(f"{path}: checksum algorithm {algo!r}; expected one of {list(_DIGEST_LEN)}")
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: Path, expected: str, algo: str) -> None:
    """Raise :class:`ChecksumError` naming ``path``, the expected and the actual digest if they differ.

    The file is left in place: callers decide whether to delete it (downloads do; raw copies must not be).
    """
    actual = file_digest(path, algo)
    if actual != expected.strip().lower():
        raise ChecksumError(f"{path}: {algo} checksum mismatch: expected {expected}, got {actual}")


def download_file(url: str, dest: Path, *, timeout: float = 60.0) -> None:
    """Stream ``url`` into ``dest``, logging progress every 10% (every 50 MiB when the size is unknown).

    Raises:
        requests.RequestException: on connection errors, timeouts (``timeout`` seconds without data) and
            HTTP error statuses.
    """
    import requests  # imported here so that reading local data never needs it

    with requests.get(url, stream=True, timeout=timeout) as resp:
        resp.raise_for_status()
        total = int(resp.headers.get("Content-Length") or 0)
        done, next_tenth = 0, 1
        unknown_step = 50 << 20
        log.info("downloading %s (%s)", url, f"{total / 2**20:.1f} MiB" if total else "size unknown")
        with open(dest, "wb") as fh:
            for chunk in resp.iter_content(chunk_size=_CHUNK):
                fh.write(chunk)
                done += len(chunk)
                # Integer tenths: float steps of 0.1 drift and skip marks.
                if total and done * 10 >= total * next_tenth:
                    pct = 100 * done // total
                    log.info("%s: %d%% (%.1f / %.1f MiB)", dest.name, pct, done / 2**20, total / 2**20)
                    next_tenth = done * 10 // total + 1
                elif not total and done >= unknown_step:
                    log.info("%s: %.1f MiB", dest.name, done / 2**20)
                    unknown_step += 50 << 20
    # With a Content-Encoding the length counts encoded bytes, which iter_content decodes.
    if total and done != total and not resp.headers.get("Content-Encoding"):
        raise DataError(f"{url}: download truncated: got {done} of {total} bytes")


def _safe_extract(archive: Path, target: Path) -> None:
    """Unpack a zip or tar ``archive`` into ``target``, refusing members that would land outside it."""
    target = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                dest = (target / info.filename).resolve()
                if not dest.is_relative_to(target):
                    raise DataError(f"{archive}: member {info.filename!r} would extract outside {target}")
            bad = zf.testzip()
            if bad is not None:
                raise DataError(f"{archive}: member {bad!r} fails its CRC-32 check (corrupt archive)")
            zf.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(target, filter="data")  # "data" rejects absolute paths, links out, devices
    else:
        raise DataError(f"{archive}: not a zip or tar archive")


def _move_tree(src: Path, dest: Path) -> None:
    """Move every file below ``src`` to the same relative place below ``dest`` (atomic per file)."""
    for path in sorted(src.rglob("*")):
        if path.is_file():
            out = dest / path.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, out)


def _fetch(source: Source, rf: RemoteFile, dest: Path) -> None:
    """Download ``rf`` into a temp folder next to ``dest``, verify it, then extract or move it into ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{source.name}-download-") as tmp:
        part = Path(tmp) / PurePosixPath(rf.filename).name
        download_file(rf.url, part)
        if rf.checksum is not None:
            try:
                verify_checksum(part, rf.checksum, rf.algo)
            except ChecksumError as err:
                part.unlink(missing_ok=True)
                raise ChecksumError(f"{err} (downloaded from {rf.url}; the bad file was deleted)") from None
        else:
            # Log the digest so a user who trusts this copy can pin it.
            log.warning(
                "%s: no published checksum; sha256=%s (unverified)", rf.url, file_digest(part, "sha256")
            )
        if rf.extract:
            staging = Path(tmp) / "extracted"
            _safe_extract(part, staging)
            content = staging / source.archive_root if source.archive_root else staging
            if not content.is_dir():
                raise DataError(
                    f"{rf.url}: archive has no folder {source.archive_root!r}; found {_listing(staging)}"
                )
            _move_tree(content, dest / rf.extract_to)
        else:
            out = dest / rf.filename
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, out)
    log.info("%s: stored in %s", rf.filename, dest)


def _listing(folder: Path, limit: int = 10) -> list[str]:
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    return names[:limit] + ([f"... {len(names) - limit} more"] if len(names) > limit else [])


# --------------------------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------------------------


def _check_member_names(name: str, members: Sequence[str]) -> None:
    for m in members:
        p = PurePosixPath(m)
        if not m or p.is_absolute() or ".." in p.parts or "\\" in m:
            raise ConfigError(
                f"dataset {name!r}: member file {m!r} must be a relative path inside the dataset folder "
                "(forward slashes, no '..')"
            )


def _missing(folder: Path, members: Sequence[str]) -> list[str]:
    return [m for m in members if not (folder / m).is_file()]


def _short(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def resolve(name: str, files: Sequence[str] | None = None, *, download: bool = True) -> Path:
    """The folder that holds ``files`` of dataset ``name``, downloading them into the cache if needed.

    Args:
        name: key of :data:`SOURCES`.
        files: dataset-relative member paths needed (None = the source's ``members``).
        download: whether to fetch missing files into the cache; with False a missing dataset raises.

    Returns:
        ``$RECSYS_GNN_RAW/<name>`` or ``cache_root()/raw/<name>``: the first that holds every file.

    Raises:
        ConfigError: unknown ``name`` or a malformed member path.
        DatasetNotFoundError: files missing everywhere and not downloadable (or ``download=False``, or the
            download failed); the message names every folder searched, what was missing there, the URLs and
            the variable to set.
        ChecksumError: a download does not match its published checksum, or has none and
            ``RECSYS_GNN_ALLOW_UNVERIFIED=1`` is not set.
    """
    source = get_source(name)
    if isinstance(files, str):  # one file name, not a sequence of characters
        files = [files]
    members = tuple(files) if files is not None else source.members
    if not members:
        raise ConfigError(f"dataset {name!r}: no member files requested")
    _check_member_names(name, members)

    raw = raw_root()
    cache = cache_root() / "raw" / name
    searched: list[tuple[Path, str, list[str]]] = []
    for folder, label in ([(raw / name, RAW_ENV)] if raw is not None else []) + [(cache, "cache")]:
        missing = _missing(folder, members)
        if not missing:
            log.debug("dataset %s: using %s", name, folder)
            return folder
        searched.append((folder, label, missing))

    def not_found(reason: str) -> DatasetNotFoundError:
        lines = [f"dataset {name!r}: required files not found ({reason}); needs {_short(members)}."]
        lines.append("Searched:")
        if raw is None:
            lines.append(f"  - {RAW_ENV} is not set (no raw folder searched)")
        for folder, label, missing in searched:
            state = "folder does not exist" if not folder.is_dir() else f"missing {_short(missing)}"
            lines.append(f"  - {folder} ({label}): {state}")
        urls = sorted({rf.url for m in members if (rf := source.remote_for(m)) is not None})
        lines.append(
            f"Official download: {', '.join(urls) if urls else 'none known'} (see {source.homepage})"
        )
        fetch = "check the network connection" if download else "call resolve(download=True)"
        lines.append(
            f"Fix: put the files in <folder>/{name}/ and set {RAW_ENV}=<folder>, or {fetch} to fetch them into "
            f"{cache}."
        )
        return DatasetNotFoundError("\n".join(lines))

    if not download:
        raise not_found("download disabled")

    missing = searched[-1][2]
    plan: list[RemoteFile] = []
    unknown: list[str] = []
    for m in missing:
        rf = source.remote_for(m)
        if rf is None:
            unknown.append(m)
        elif rf not in plan:
            plan.append(rf)
    if unknown:
        raise not_found(f"no download URL is known for {_short(unknown)}")
    unverified = [rf for rf in plan if rf.checksum is None]
    if unverified and not allow_unverified():
        raise ChecksumError(
            f"dataset {name!r}: no published checksum to verify "
            + ", ".join(f"{rf.filename} ({rf.url})" for rf in unverified)
            + f"; refusing to download unverified files. Set {ALLOW_UNVERIFIED_ENV}=1 to accept them, or put "
            f"the files in <folder>/{name}/ and set {RAW_ENV}=<folder>."
        )

    for rf in plan:
        try:
            _fetch(source, rf, cache)
        except (ChecksumError, ConfigError):
            raise
        except Exception as err:  # network errors, HTTP statuses, corrupt archives
            raise not_found(f"download of {rf.url} failed: {type(err).__name__}: {err}") from err

    still = _missing(cache, members)
    if still:
        searched[-1] = (cache, "cache", still)
        raise not_found(f"downloaded {', '.join(rf.filename for rf in plan)} but they lack {_short(still)}")
    return cache


__all__ = [
    "ALLOW_UNVERIFIED_ENV",
    "CACHE_ENV",
    "RAW_ENV",
    "SOURCES",
    "RemoteFile",
    "Source",
    "UrlTemplate",
    "allow_unverified",
    "cache_root",
    "download_file",
    "file_digest",
    "get_source",
    "raw_root",
    "resolve",
    "verify_checksum",
]
