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

Whichever folder is used, every requested member file is then checked against the size and sha256 of the
official copy recorded in its source's ``digests`` (:func:`verify_members`): a copy that differs (truncated,
edited, another release) or that has no recorded digest is refused with the file, the expected and the found
values, unless ``RECSYS_GNN_ALLOW_UNVERIFIED=1`` explicitly allows an unverified run (then each such file is
logged as a warning). The size is compared first; a file's sha256 is computed once and remembered for its
(path, size, mtime) in ``$RECSYS_GNN_CACHE/verified_raw.json`` (never in the raw folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from recsys_gnn.data.errors import (
    ChecksumError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    RawFileMismatchError,
)

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
class MemberDigest:
    """Byte size and sha256 of one member file of the official release.

    The size is compared first (instant: a truncated copy is shorter); the digest only when the size matches.
    """

    size: int
    sha256: str

    def __post_init__(self) -> None:
        if self.size < 0 or not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ConfigError(
                f"member digest ({self.size}, {self.sha256!r}): expected size >= 0 and a sha256"
            )


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
        digests: for each member file (dataset-relative path) with a known official copy, its size and
            sha256; :func:`resolve` refuses a local copy that differs, and a member without an entry unless
            ``RECSYS_GNN_ALLOW_UNVERIFIED=1``.
        verify: False for sources with no official release to compare with (generated data); their files
            are never checked.
        optional: member files read only under some reader options (ml-100k's folds): not required, but
            verified like the requested ones whenever they are present.
    """

    name: str
    files: tuple[RemoteFile, ...]
    members: tuple[str, ...]
    archive_root: str = ""
    license: str = ""
    homepage: str = ""
    templates: tuple[UrlTemplate, ...] = field(default=())
    digests: Mapping[str, MemberDigest] = field(default_factory=dict)
    verify: bool = True
    optional: tuple[str, ...] = ()

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
    name: str,
    md5: str | None,
    provides: tuple[str, ...],
    members: tuple[str, ...],
    redistribution: str,
    homepage: str,
    digests: dict[str, tuple[int, str]] | None = None,
    optional: tuple[str, ...] = (),
) -> Source:
    """``provides``: what the zip yields; ``members``: what the reader needs (the default of :func:`resolve`)."""
    return Source(
        name=name,
        files=(
            RemoteFile(
                f"{_GROUPLENS}/movielens/{name}.zip", f"{name}.zip", md5, "md5", True, members=provides
            ),
        ),
        members=members,
        archive_root=name,
        license=f"{_GROUPLENS_LICENSE}; {redistribution}",
        homepage=homepage,
        digests=_member_digests(digests or {}),
        optional=optional,
    )


def _member_digests(table: dict[str, tuple[int, str]]) -> dict[str, MemberDigest]:
    return {member: MemberDigest(size, sha) for member, (size, sha) in table.items()}


# Byte size and sha256 of every member file a reader reads, measured on the copies in RECSYS_GNN_RAW, each
# checked there against the official release (see that folder's PROVENANCE.md: cross-repository git blob
# consensus, published counts). A local copy is verified against these before it is read (:func:`resolve`).
_ML_LATEST_SMALL_FILES = {
    "ratings.csv": (2_483_723, "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"),
    "movies.csv": (494_431, "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07"),
    "tags.csv": (118_660, "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d"),
    "links.csv": (197_979, "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31"),
}
_ML100K_FILES = {
    "u.data": (1_979_173, "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
    "u.item": (236_344, "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
    "u.genre": (202, "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),
    "u.user": (22_628, "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
    "u.occupation": (193, "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
    "u.info": (36, "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b"),
    "u1.base": (1_586_544, "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a"),
    "u1.test": (392_629, "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950"),
    "u2.base": (1_583_948, "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e"),
    "u2.test": (395_225, "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3"),
    "u3.base": (1_582_546, "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d"),
    "u3.test": (396_627, "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d"),
    "u4.base": (1_581_878, "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca"),
    "u4.test": (397_295, "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9"),
    "u5.base": (1_581_776, "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485"),
    "u5.test": (397_397, "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634"),
    "ua.base": (1_792_501, "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2"),
    "ua.test": (186_672, "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42"),
    "ub.base": (1_792_476, "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881"),
    "ub.test": (186_697, "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da"),
}
_ML100K_PROVIDES = ("u.data", "u.item", "u.genre", "u.user", "u.occupation", "u.info") + tuple(
    f"u{k}.{part}" for k in (1, 2, 3, 4, 5, "a", "b") for part in ("base", "test")
)
# read_ml_100k(fold=k) reads u<k>.base / u<k>.test instead of u.data
_ML100K_FOLD_FILES = tuple(f"u{k}.{part}" for k in (1, 2, 3, 4, 5, "a", "b") for part in ("base", "test"))
_HETREC_FILES = {
    "artists.dat": (1_925_879, "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648"),
    "tags.dat": (234_468, "e95175f259be4c0c47644ae23d66131cd6d5767142a1405000e79f5584691d70"),
    "user_artists.dat": (1_296_455, "001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b"),
    "user_friends.dat": (251_565, "9a3a8f7fa5f5ec832335e5b58ed69a4cf27c6f6f6afcde62134810eea46445a7"),
    "user_taggedartists.dat": (4_366_696, "d31fe938fcfeed6f0059f37a36b156f63674d073fc2553e5cc9dc1595e365bc7"),
}
# What recsys_gnn.data.readers.lastfm.read_lastfm reads (user_friends.dat is not read, so not required).
_HETREC_MEMBERS = ("user_artists.dat", "artists.dat", "tags.dat", "user_taggedartists.dat")

_AMAZON_BASE = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"
# UCSD publishes no checksums; these are the staged files (see RECSYS_GNN_RAW/amazon2018/PROVENANCE.md).
_AMAZON_FILES = {
    "Gift_Cards_5.json.gz": (176_952, "41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25"),
    "meta_Gift_Cards.json.gz": (380_174, "07fd154b7275ab9b1537e3802913508c7a5f84ed00f73201cd3fa18b2b51b342"),
    "Magazine_Subscriptions_5.json.gz": (
        401_655,
        "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2",
    ),
    "meta_Magazine_Subscriptions.json.gz": (
        1_276_947,
        "147cb78dac0f9ce04849b196e2e13cad6a504bff45d53500b7a1fe8121d91595",
    ),
    "Magazine_Subscriptions.csv": (
        3_653_615,
        "6e1b48a78f7d4713a3f15abb028d5a1258e3c06d04b258b9d478f55d057a6696",
    ),
}
# The staged meta_Gift_Cards.json.gz is the older metaFiles/ release; the metaFiles2/ file at the official URL
# differs in bytes (image field names), so a download of it has no known digest.
_AMAZON_NOT_AT_URL = {"meta_Gift_Cards.json.gz"}
# Order matters: the first pattern that matches a member wins (``X_5.json.gz`` also matches ``X.json.gz``).
_AMAZON_TEMPLATES = (
    UrlTemplate(r"meta_(?P<category>\w+)\.json\.gz", _AMAZON_BASE + "/metaFiles2/meta_{category}.json.gz"),
    UrlTemplate(r"(?P<category>\w+)_5\.json\.gz", _AMAZON_BASE + "/categoryFilesSmall/{category}_5.json.gz"),
    UrlTemplate(r"(?P<category>\w+)\.csv", _AMAZON_BASE + "/categoryFilesSmall/{category}.csv"),
    UrlTemplate(r"(?P<category>\w+)\.json\.gz", _AMAZON_BASE + "/categoryFiles/{category}.json.gz"),
)


def _amazon_files() -> tuple[RemoteFile, ...]:
    out = []
    for filename, (_, digest) in _AMAZON_FILES.items():
        derived = next(rf for t in _AMAZON_TEMPLATES if (rf := t.remote_for(filename)) is not None)
        checksum = None if filename in _AMAZON_NOT_AT_URL else digest
        out.append(RemoteFile(derived.url, filename, checksum, "sha256"))
    return tuple(out)


# UniSRec distributes its processed benchmark through Google Drive only; these are the bytes staged in
# RECSYS_GNN_RAW, from a pinned commit of the CoWPiRec repository (see PROVENANCE.md).
_UNISREC_BASE = "https://raw.githubusercontent.com/ysh-1998/CoWPiRec/db47560c2364650d22afc77080717287daec5079/dataset/Scientific"
_UNISREC_FILES = {
    "Scientific.item2index": (69_050, "896ab1017508cf20834d3d0537da9f8f624324223a835af272a98ba16f8c087a"),
    "Scientific.user2index": (165_602, "f0162b1a3a0c6b7e816f86208e7b36f65d6787923126f9558fbc6d368e4c4974"),
    "Scientific.text": (859_222, "95887e6bda76e54f59b71b566320520d5da74e21d3b6ff8f20bfb6e8e84aa831"),
    "Scientific.train.inter": (929_295, "7284f6489d956fa20c9b64ffc84569264320edba5c3bc2fcb22db2ea083a1163"),
    "Scientific.valid.inter": (271_473, "5f37c84d3b54617cdc46638c89dfe8741c7efc4987acd5eb64de2cbd4311f46c"),
    "Scientific.test.inter": (309_842, "546da7e5f44002b4518d7fd58066684bc09613f76c240914e16976d57cfe7083"),
}

# The authors' repository stores data/<kind>/<lang>/<file>; the dataset folder uses <lang>/<kind>/<file>.
_NEMIG_BASE = (
    "https://raw.githubusercontent.com/andreeaiana/nemig/9eb1a36ce9b3ccf673cad66a238739d661bb7b23/data"
)
_NEMIG_FILES = {
    "de/cache/disambiguated_publishers.csv": (
        898,
        "a1fbdafa616fea7a84cb8f760d25a188f528ad205917ee15fd465ca8be21a2c9",
    ),
    "de/cache/political_orientation_annotations.csv": (
        730,
        "8fc6c7a9ca45bfb09dd91ba01f1449cd504208666141a51c0bbaa340cc669024",
    ),
    "de/cache/sentiment_annotations.csv": (
        98_416,
        "727050cedfcf81d32da135771da5e282be7700096f8e8bcbba6dbe53bdf83ad6",
    ),
    "de/cache/subtopic_annotations.csv": (
        281_102,
        "9b7a946aa2c7a2bc6c13e4772d22b5c3962b07b29b1c2c4d3590b4b8da7d6e95",
    ),
    "de/kg/nemig_de_base-instances_content_literals.nt.bz2": (
        644_687,
        "840eb6dd909543328dc67db61424b53410d6866e708c94e7dd01d5cdad673497",
    ),
    "de/kg/nemig_de_base-instances_content_mapping.nt.bz2": (
        90_998,
        "7cda3dfff6535332a9929d7b81ddb6a6833fdc6011fdafc32fb15aedb602ce34",
    ),
    "de/kg/nemig_de_base-instances_metadata_literals.nt.bz2": (
        244_839,
        "d33f6c406168e46beae81a782e019e3dc1c831b0da205b7cf8600c23311040ee",
    ),
    "de/kg/nemig_de_base-instances_metadata_resources.nt.bz2": (
        317_444,
        "40e5841369bb8a709dbf298810a0e6543ea3353fd6c0c97e3fcd9fb998794556",
    ),
    "de/kg/nemig_de_base-instances_political_orientation_mapping.nt.bz2": (
        529,
        "3acf3182544c6b1c30a54475e8cf85b61f4147ce7fbe1e82052f38c9d7c584eb",
    ),
    "de/kg/nemig_de_base-instances_sentiment_mapping.nt.bz2": (
        16_152,
        "e26a27f0087795667b923f63fbb0d7f6098f0aea7bfd5cf660cbb2971c236ec6",
    ),
    "de/kg/nemig_de_base-instances_subtopic_mapping.nt.bz2": (
        18_198,
        "41e8b4b753dc359b62d4ff6d218e77b3e4907a2c4ebeb2c3e7e8caf100cd305e",
    ),
    "de/kg/nemig_de_base-instances_types.nt.bz2": (
        34_820,
        "fee77b29b905c2f164d230316a69d42575adecd4a4a1e9ae70f81750eb368954",
    ),
    "de/user_data/behaviors.tsv": (
        2_351_903,
        "d0582d8fb7b00237ab93ca9858e2f929020733f8dd53ac76c3aff5b4f8bbe87b",
    ),
    "de/user_data/demographics_politics.tsv": (
        658_680,
        "35dadbecfd069f17380e7da944f3f06f7efe558985cf39d8982603fd77527692",
    ),
    "en/cache/disambiguated_publishers.csv": (
        987,
        "f6e72ba78d3d29ebb5fe71cc2556fc50cb7aa8831f5d0f51ea86d01476d3e0c4",
    ),
    "en/cache/political_orientation_annotations.csv": (
        795,
        "9c141e8da13fbc73036d98b1cb423f7af1989f89492eb842a3f2ec8991c525ab",
    ),
    "en/cache/sentiment_annotations.csv": (
        149_331,
        "2fc03823d8439757a263bb1b0a16dff4195d2fe18e2785a602dca70c691fd4b3",
    ),
    "en/cache/subtopic_annotations.csv": (
        408_105,
        "aa6e3e29f4d7c89d26729347085ee7898412a51a446a2f3e13d6a495ce42830d",
    ),
    "en/kg/nemig_en_base-instances_content_literals.nt.bz2": (
        774_540,
        "39e249a6e0fb782c63984c9bba813fcc58bef89ae9ef1b180cd8ceefbad25607",
    ),
    "en/kg/nemig_en_base-instances_content_mapping.nt.bz2": (
        140_613,
        "610724a88202412c0cbbb3a2de484aaec34b3823a88cbe230b2ec9e477320eb8",
    ),
    "en/kg/nemig_en_base-instances_metadata_literals.nt.bz2": (
        377_314,
        "fad877c1e4f15408be863dca536d1720c96e3e85dc5db7628e22bf4a5a3e8ffa",
    ),
    "en/kg/nemig_en_base-instances_metadata_resources.nt.bz2": (
        513_573,
        "978ddf63fe4d3caaa3358451a9cf2f18f946167cfbcd502289ebb349ced3ac07",
    ),
    "en/kg/nemig_en_base-instances_political_orientation_mapping.nt.bz2": (
        506,
        "e216f473129077c99e144142b2bf3d4ec5eea859b86187c55998fb6ee3d513f8",
    ),
    "en/kg/nemig_en_base-instances_sentiment_mapping.nt.bz2": (
        25_130,
        "fc3011e7977e73f12ad8eaf63752e6ba4424cdee5e1dd3faa4fae2ba2ce0072e",
    ),
    "en/kg/nemig_en_base-instances_subtopic_mapping.nt.bz2": (
        29_723,
        "22f1bd090a26109162eadfea6d613b929283288b2584304cbd70348582171773",
    ),
    "en/kg/nemig_en_base-instances_types.nt.bz2": (
        53_235,
        "88997c0c1db10ebd735ecea17931afe2bf0934bcc2bd1a027acf925c1386e828",
    ),
    "en/user_data/behaviors.tsv": (
        1_904_470,
        "0e8efcd9a70de6e5a206a8028460ebed76e9b41baf4cafb015adc12e7f89cca9",
    ),
    "en/user_data/demographics_politics.tsv": (
        574_292,
        "6930f867c276d64137283af30393e84c5255f5b8f5d8662cfaafb70484a1d635",
    ),
}
# What recsys_gnn.data.readers.nemig.read_nemig reads for English (nemig_files("en")).
_NEMIG_MEMBERS = (
    "en/user_data/behaviors.tsv",
    "en/kg/nemig_en_base-instances_content_mapping.nt.bz2",
    "en/kg/nemig_en_base-instances_content_literals.nt.bz2",
    "en/kg/nemig_en_base-instances_subtopic_mapping.nt.bz2",
    "en/cache/subtopic_annotations.csv",
)


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
        ("ratings.csv", "movies.csv", "tags.csv", "links.csv", "README.txt"),
        # links.csv is never read, so not required
        ("ratings.csv", "movies.csv", "tags.csv"),
        "redistribution allowed under the same terms",
        "https://grouplens.org/datasets/movielens/latest/",
        _ML_LATEST_SMALL_FILES,
    ),
    "ml-100k": _movielens(
        "ml-100k",
        "0e33842e24a9c977be4e0107933c0723",
        _ML100K_PROVIDES,
        # what read_ml_100k reads without a fold (a fold adds u<fold>.base/.test)
        ("u.data", "u.item", "u.genre"),
        "no redistribution without permission",
        "https://grouplens.org/datasets/movielens/100k/",
        _ML100K_FILES,
        _ML100K_FOLD_FILES,
    ),
    "ml-1m": _movielens(
        "ml-1m",
        "c4d9eecfca2ab87c1945afe126590906",
        ("ratings.dat", "movies.dat", "users.dat"),
        # users.dat is never read; no member digests known (no copy here to measure)
        ("ratings.dat", "movies.dat"),
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
                members=tuple(_HETREC_FILES) + ("user_taggedartists-timestamps.dat", "readme.txt"),
            ),
        ),
        _HETREC_MEMBERS,
        "",
        "Last.fm data for non-commercial use only; cite Cantador, Brusilovsky & Kuflik (HetRec 2011)",
        "https://grouplens.org/datasets/hetrec-2011/",
        digests=_member_digests(_HETREC_FILES),
    ),
    "amazon2018": Source(
        "amazon2018",
        _amazon_files(),
        tuple(_AMAZON_FILES),
        "",
        "Amazon Review Data (2018): research use, cite Ni, Li & McAuley (EMNLP 2019); no redistribution",
        "https://nijianmo.github.io/amazon/index.html",
        _AMAZON_TEMPLATES,
        digests=_member_digests(_AMAZON_FILES),
    ),
    "unisrec-scientific": Source(
        "unisrec-scientific",
        tuple(RemoteFile(f"{_UNISREC_BASE}/{f}", f, d, "sha256") for f, (_, d) in _UNISREC_FILES.items()),
        tuple(_UNISREC_FILES),
        "",
        "Derived from Amazon Review Data (2018): research use; cite Ni et al. (EMNLP 2019) and Hou et al. (KDD 2022)",
        "https://github.com/RUCAIBox/UniSRec",
        digests=_member_digests(_UNISREC_FILES),
    ),
    "nemig": Source(
        "nemig",
        tuple(RemoteFile(_nemig_url(f), f, d, "sha256") for f, (_, d) in _NEMIG_FILES.items()),
        _NEMIG_MEMBERS,
        "",
        "CC BY-NC-SA 4.0 (data); cite Iana et al., NeMig, INRA@RecSys 2023 (doi:10.5281/zenodo.7908392)",
        "https://github.com/andreeaiana/nemig",
        digests=_member_digests(_NEMIG_FILES),
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
    """Whether unverified files are allowed (``RECSYS_GNN_ALLOW_UNVERIFIED=1``): downloads without a published
    checksum, and local member files that differ from (or have no) recorded official digest."""
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
# Verification of local member files
# --------------------------------------------------------------------------------------------------------------

VERIFIED_CACHE_FILE = "verified_raw.json"


def _verified_cache_path() -> Path:
    return cache_root() / VERIFIED_CACHE_FILE


def _load_verified() -> dict[str, list]:
    path = _verified_cache_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); file digests will be recomputed", path, err)
        return {}
    return data if isinstance(data, dict) else {}


def _store_verified(entries: dict[str, list]) -> None:
    """Write the digest memo atomically; a cache that cannot be written only costs a re-hash next time."""
    path = _verified_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".verified-", delete=False) as fh:
            json.dump(entries, fh, indent=0, sort_keys=True)
        os.replace(fh.name, path)
    except OSError as err:
        log.warning("%s: cannot store verified digests (%s); they will be recomputed next run", path, err)


def cached_sha256(path: Path, memo: dict[str, list] | None = None) -> str:
    """sha256 of ``path``, reusing the value remembered for the same (path, size, mtime_ns).

    Args:
        path: the file.
        memo: the loaded memo (updated in place); None loads and stores ``verified_raw.json`` itself.
    """
    own = memo is None
    memo = _load_verified() if memo is None else memo
    st = path.stat()
    key = str(path.resolve())
    hit = memo.get(key)
    if isinstance(hit, list) and len(hit) == 3 and hit[:2] == [st.st_size, st.st_mtime_ns]:
        return str(hit[2])
    digest = file_digest(path, "sha256")
    memo[key] = [st.st_size, st.st_mtime_ns, digest]
    if own:
        _store_verified(memo)
    return digest


def verify_members(source: Source, folder: Path, members: Sequence[str]) -> list[str]:
    """Check each of ``members`` in ``folder`` against ``source.digests`` (size first, then sha256).

    Returns:
        One line per member that is not verified (differs, or has no recorded digest); empty when all match.
        These are only returned (and logged as warnings) when ``RECSYS_GNN_ALLOW_UNVERIFIED=1``.

    Raises:
        RawFileMismatchError: some member differs from its official copy or has no recorded digest, and
            ``RECSYS_GNN_ALLOW_UNVERIFIED=1`` is not set; the message names each file with the expected
            and found size or sha256, and the variable.
    """
    if not source.verify:
        return []
    memo = _load_verified()
    before = dict(memo)
    problems: list[str] = []
    for m in members:
        path = folder / m
        expected = source.digests.get(m)
        size = path.stat().st_size
        if expected is None:
            problems.append(
                f"{path}: no recorded size/sha256 of the official {m} of {source.name!r} to check it against "
                f"(found {size:,} bytes)"
            )
        elif size != expected.size:
            short = " (shorter: truncated?)" if size < expected.size else ""
            problems.append(
                f"{path}: expected the official {m} of {expected.size:,} bytes, found {size:,} bytes{short}"
            )
        else:
            found = cached_sha256(path, memo)
            if found != expected.sha256:
                problems.append(f"{path}: sha256 expected {expected.sha256}, found {found} (altered copy?)")
    if memo != before:
        _store_verified(memo)
    if not problems:
        log.debug("dataset %s: %d member file(s) verified in %s", source.name, len(members), folder)
        return []
    if allow_unverified():
        for line in problems:
            log.warning("UNVERIFIED (%s=1): %s", ALLOW_UNVERIFIED_ENV, line)
        return problems
    raise RawFileMismatchError(
        f"dataset {source.name!r}: {len(problems)} file(s) do not match the official release:\n  - "
        + "\n  - ".join(problems)
        + f"\nFix: replace them with the official files ({source.homepage or 'see recsys_gnn/data/sources.py'}), "
        f"or set {ALLOW_UNVERIFIED_ENV}=1 to run on them unverified."
    )


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


def _with_optional(source: Source, folder: Path, members: Sequence[str]) -> list[str]:
    """``members`` plus the source's optional members present in ``folder`` (verified when present)."""
    extra = [m for m in source.optional if m not in members and (folder / m).is_file()]
    return [*members, *extra]


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
        RawFileMismatchError: a member file found differs from the recorded official copy, or has no
            recorded digest, and ``RECSYS_GNN_ALLOW_UNVERIFIED=1`` is not set (see :func:`verify_members`).
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
            verify_members(source, folder, _with_optional(source, folder, members))
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
        where = "; ".join(
            f"{_short(miss)} missing from {folder} ({label})" for folder, label, miss in searched
        )
        raise ChecksumError(
            f"dataset {name!r}: {where}. Downloading them needs "
            + ", ".join(f"{rf.filename} ({rf.url})" for rf in unverified)
            + f", which has no published checksum to verify; refusing to download unverified files. Set "
            f"{ALLOW_UNVERIFIED_ENV}=1 to accept them, or put the files in <folder>/{name}/ and set "
            f"{RAW_ENV}=<folder>."
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
    verify_members(source, cache, _with_optional(source, cache, members))
    return cache


__all__ = [
    "ALLOW_UNVERIFIED_ENV",
    "CACHE_ENV",
    "VERIFIED_CACHE_FILE",
    "MemberDigest",
    "RAW_ENV",
    "SOURCES",
    "RemoteFile",
    "Source",
    "UrlTemplate",
    "allow_unverified",
    "cache_root",
    "cached_sha256",
    "download_file",
    "file_digest",
    "get_source",
    "raw_root",
    "resolve",
    "verify_checksum",
    "verify_members",
]
