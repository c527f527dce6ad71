"""Webflow's Assets API and the S3-style storage its presigned uploads go to.

An upload is two requests, as on Webflow (``POST /v2/sites/{site_id}/assets``, then a multipart
POST to ``uploadUrl``): the first creates the asset from a file name and the file's MD5 and
answers ``uploadDetails``, the fields of an S3 presigned POST whose ``Policy`` is signed by the
sandbox; the second goes to the storage endpoint (``/_sandbox/storage/{bucket}``, outside
``/v2``: no token, no rate limit, no faults) which checks what S3 would (one auth mechanism, the
signature, the policy's expiry, every condition, no extra field, the size range) and then the
MD5 given at creation. Storage answers as S3 does: XML, ``<Error><Code>``.... Once uploaded,
the asset's ``hostedUrl`` (``/_sandbox/assets/{site_id}/{asset_id}_{fileName}``) serves the bytes.

Assets are journaled like items (``asset``/``drop_asset`` ops through the core's journal); the
bytes live beside the journal in ``<state file>.assets/`` (memory without a state file), written
before the journal line that says the asset is uploaded, so an acknowledged upload survives a
SIGKILL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from flowport.pipeline.sandbox._config import SandboxConfig
from flowport.pipeline.sandbox._errors import ApiError, not_found, validation_error
from flowport.pipeline.sandbox._fields import is_object_id
from flowport.pipeline.sandbox._remote import FetchedFile

__all__ = [
    "ASSET_CONTENT_TYPES",
    "STORAGE_BUCKET",
    "AssetHooks",
    "AssetStore",
    "StorageError",
    "receive_upload",
    "serve_asset",
]

STORAGE_BUCKET = "webflow-sandbox-assets"
#: The file types the sandbox takes, by extension: Webflow's asset panel's images and documents.
ASSET_CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "svg": "image/svg+xml",
    "ico": "image/x-icon",
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "txt": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "zip": "application/zip",
}
_CREATE_KEYS = frozenset({"fileName", "fileHash", "parentFolder"})
_UPDATE_KEYS = frozenset({"displayName", "altText"})
_MD5_HEX = re.compile(r"[0-9a-f]{32}")
_FILE_NAME_MAX = 100  # the spec: "File names must be less than 100 characters"
# Form fields S3 never matches against the policy: the policy and signature themselves, the file.
_UNSIGNED_FIELDS = frozenset({"policy", "x-amz-signature", "file"})


@dataclass(slots=True)
class Asset:
    id: str
    site_id: str
    file_name: str
    file_hash: str
    content_type: str
    display_name: str
    created_on: str
    last_updated: str
    alt_text: str | None = None
    size: int = 0
    uploaded: bool = False
    #: A file Webflow fetched for an Image/File field value: served at its url, not an Assets
    #: API asset (the sandbox's reading; Webflow's docs say nothing of listing such files).
    cms: bool = False

    @property
    def key(self) -> str:
        return f"{self.site_id}/{self.id}_{self.file_name}"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")

    def to_json(self, public_root: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "contentType": self.content_type,
            "size": self.size,
            "siteId": self.site_id,
            "hostedUrl": self.hosted_url(public_root),
            "originalFileName": self.file_name,
            "displayName": self.display_name,
            "lastUpdated": self.last_updated,
            "createdOn": self.created_on,
            "variants": [],
            "altText": self.alt_text,
        }

    def hosted_url(self, public_root: str) -> str:
        return f"{public_root}/_sandbox/assets/{self.site_id}/{self.id}_{quote(self.file_name)}"

    def to_record(self) -> dict[str, Any]:
        return {
            "op": "asset",
            "id": self.id,
            "site": self.site_id,
            "name": self.file_name,
            "md5": self.file_hash,
            "type": self.content_type,
            "display": self.display_name,
            "co": self.created_on,
            "u": self.last_updated,
            "alt": self.alt_text,
            "size": self.size,
            "up": self.uploaded,
            "cms": self.cms,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Asset:
        return cls(
            id=record["id"],
            site_id=record["site"],
            file_name=record["name"],
            file_hash=record["md5"],
            content_type=record["type"],
            display_name=record["display"],
            created_on=record["co"],
            last_updated=record["u"],
            alt_text=record["alt"],
            size=record["size"],
            uploaded=record["up"],
            cms=bool(record.get("cms", False)),
        )


@dataclass(frozen=True, slots=True)
class AssetHooks:
    """What the asset store borrows from the core: ids, time, the journal, the site check."""

    new_id: Callable[[], str]
    now: Callable[[], str]
    record: Callable[[dict[str, Any]], None]
    commit: Callable[[], None]
    check_site: Callable[[str], object]


class StorageError(Exception):
    """An S3-style refusal of a storage request: a status and an XML ``<Error>`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>"
            "</Error>"
        )
        return web.Response(text=body, status=self.status, content_type="application/xml")


class _Blobs:
    """Uploaded bytes by asset id: files beside the journal (0600 in a 0700 folder), or memory."""

    def __init__(self, folder: Path | None, *, fsync: bool) -> None:
        self._folder = folder
        self._fsync = fsync
        self._memory: dict[str, bytes] = {}

    @classmethod
    def for_config(cls, config: SandboxConfig) -> _Blobs:
        state = config.state_file
        folder = None if state is None else state.with_name(state.name + ".assets")
        return cls(folder, fsync=config.fsync)

    def put(self, asset_id: str, data: bytes) -> None:
        if self._folder is None:
            self._memory[asset_id] = data
            return
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self._folder / f"{asset_id}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, data)
            if self._fsync:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        temporary.replace(self._folder / asset_id)

    def get(self, asset_id: str) -> bytes | None:
        if self._folder is None:
            return self._memory.get(asset_id)
        try:
            return (self._folder / asset_id).read_bytes()
        except FileNotFoundError:
            return None

    def drop(self, asset_id: str) -> None:
        self._memory.pop(asset_id, None)
        if self._folder is not None:
            (self._folder / asset_id).unlink(missing_ok=True)

    def clear(self) -> None:
        self._memory.clear()
        if self._folder is not None and self._folder.is_dir():
            for path in self._folder.iterdir():
                path.unlink(missing_ok=True)


@dataclass(slots=True)
class UploadForm:
    """A storage POST as read from the wire: the fields before the file, then the file."""

    fields: dict[str, str] = field(default_factory=dict)  # names lowercased, as S3 matches them
    data: bytes | None = None
    size: int = 0  # the whole file's size, even when ``data`` stopped at the read cap
    authorization: bool = False


class AssetStore:
    """The assets of every site and their storage, JSON in and out like the core."""

    def __init__(self, config: SandboxConfig, hooks: AssetHooks) -> None:
        self.config = config
        self._hooks = hooks
        self._blobs = _Blobs.for_config(config)
        self._secret = hashlib.blake2b(f"assets:{config.seed}".encode(), digest_size=32).digest()
        self.assets: dict[str, Asset] = {}
        #: Where hostedUrl and uploadUrl point; the server sets its own address when it starts.
        self.public_root = "http://sandbox.invalid"

    # ---- journal -----------------------------------------------------------------------

    def apply(self, op: Mapping[str, Any]) -> None:
        if op["op"] == "asset":
            asset = Asset.from_record(op)
            self.assets[asset.id] = asset
        elif op["op"] == "drop_asset":
            self.assets.pop(op["id"], None)

    def records(self) -> Iterator[dict[str, Any]]:
        for asset in self.assets.values():
            yield asset.to_record()

    def forget(self) -> None:
        """Replaying a reset: the records go, the files stay (the snapshot starts with one)."""
        self.assets.clear()

    def clear(self) -> None:
        self.assets.clear()
        self._blobs.clear()

    def dump(self) -> list[dict[str, Any]]:
        return [
            {
                **a.to_json(self.public_root),
                "fileHash": a.file_hash,
                "uploaded": a.uploaded,
                "cms": a.cms,
            }
            for a in self.assets.values()
        ]

    def _put(self, asset: Asset) -> None:
        self.assets[asset.id] = asset
        self._hooks.record(asset.to_record())

    # ---- files of Image/File field values -------------------------------------------------

    def file_url(self, site_id: str, file_id: str, file_name: str) -> str:
        return f"{self.public_root}/_sandbox/assets/{site_id}/{file_id}_{quote(file_name)}"

    def existing_file_url(self, site_id: str, file_id: str) -> str | None:
        """The hosted url of a file of the site an item may name by ``fileId``: an uploaded
        asset or a file fetched for another item; None when there is no such file."""
        asset = self.assets.get(file_id)
        if asset is None or asset.site_id != site_id or not asset.uploaded:
            return None
        return asset.hosted_url(self.public_root)

    def host_files(self, site_id: str, hosted: list[tuple[str, FetchedFile]]) -> None:
        """Keeps fetched files as the request writes its items: the bytes first, then the
        record, which the core journals with the items (so a kill leaves no item without its
        file: at worst a file no record names)."""
        now = self._hooks.now()
        for file_id, fetched in hosted:
            self._blobs.put(file_id, fetched.data)
            self._put(
                Asset(
                    id=file_id,
                    site_id=site_id,
                    file_name=fetched.file_name,
                    file_hash=fetched.md5,
                    content_type=fetched.content_type,
                    display_name=f"{file_id}_{fetched.file_name}",
                    created_on=now,
                    last_updated=now,
                    size=len(fetched.data),
                    uploaded=True,
                    cms=True,
                )
            )

    # ---- the API -----------------------------------------------------------------------

    def _asset(self, asset_id: str) -> Asset:
        if not is_object_id(asset_id):
            raise validation_error(
                "Provided ID is invalid: asset_id must be 24 hexadecimal characters",
                [{"param": "asset_id", "description": f"invalid id {asset_id!r}"}],
            )
        asset = self.assets.get(asset_id)
        if asset is None or asset.cms:
            raise not_found("Asset", asset_id)
        return asset

    def list_assets(self, site_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        self._hooks.check_site(site_id)
        offset = _int_query(query, "offset", 0, 0, None)
        limit = _int_query(query, "limit", 100, 1, 100)
        if query.get("folderId"):
            raise validation_error(
                "The sandbox has no asset folders; omit folderId",
                [{"param": "folderId", "description": "no folder with this id"}],
            )
        listed = [a for a in self.assets.values() if a.site_id == site_id and not a.cms]
        page = [
            {**asset.to_json(self.public_root), "folderId": None}
            for asset in listed[offset : offset + limit]
        ]
        return {
            "assets": page,
            "pagination": {"limit": limit, "offset": offset, "total": len(listed)},
        }

    def create_asset(self, site_id: str, body: object) -> dict[str, Any]:
        self._hooks.check_site(site_id)
        body = _request_object(body, _CREATE_KEYS)
        file_name = _file_name(body.get("fileName"))
        file_hash = body.get("fileHash")
        if not isinstance(file_hash, str) or not _MD5_HEX.fullmatch(file_hash.lower()):
            raise validation_error(
                "fileHash must be the file's MD5 as 32 hexadecimal digits",
                [{"param": "fileHash", "description": f"invalid MD5 {file_hash!r}"}],
            )
        if body.get("parentFolder") is not None:
            raise validation_error(
                "The sandbox has no asset folders; omit parentFolder",
                [{"param": "parentFolder", "description": "no folder with this id"}],
            )
        now = self._hooks.now()
        asset_id = self._hooks.new_id()
        extension = file_name.rpartition(".")[2].lower()
        asset = Asset(
            id=asset_id,
            site_id=site_id,
            file_name=file_name,
            file_hash=file_hash.lower(),
            content_type=ASSET_CONTENT_TYPES[extension],
            display_name=f"{asset_id}_{file_name}",
            created_on=now,
            last_updated=now,
        )
        self._put(asset)
        self._hooks.commit()
        return self._create_answer(asset)

    def _create_answer(self, asset: Asset) -> dict[str, Any]:
        hosted = asset.hosted_url(self.public_root)
        return {
            "uploadDetails": self._upload_details(asset),
            "contentType": asset.content_type,
            "id": asset.id,
            "uploadUrl": f"{self.public_root}/_sandbox/storage/{STORAGE_BUCKET}",
            "assetUrl": hosted,
            "hostedUrl": hosted,
            "originalFileName": asset.file_name,
            "createdOn": asset.created_on,
            "lastUpdated": asset.last_updated,
        }

    def get_asset(self, asset_id: str) -> dict[str, Any]:
        return self._asset(asset_id).to_json(self.public_root)

    def update_asset(self, asset_id: str, body: object) -> dict[str, Any]:
        asset = self._asset(asset_id)
        body = _request_object(body, _UPDATE_KEYS)
        problems = [
            {"param": key, "description": "must be a string"}
            for key in sorted(_UPDATE_KEYS)
            if key in body and not isinstance(body[key], str)
        ]
        display_name = body.get("displayName")
        if isinstance(display_name, str) and not display_name.strip():
            problems.append({"param": "displayName", "description": "must not be blank"})
        if problems:
            raise validation_error("Invalid asset update", problems)
        if display_name is not None:
            asset.display_name = display_name
        if "altText" in body:
            asset.alt_text = body["altText"]
        asset.last_updated = self._hooks.now()
        self._put(asset)
        self._hooks.commit()
        return asset.to_json(self.public_root)

    def delete_asset(self, asset_id: str) -> None:
        asset = self._asset(asset_id)
        del self.assets[asset.id]
        self._hooks.record({"op": "drop_asset", "id": asset.id})
        self._hooks.commit()
        # After the journal line: a kill in between leaves only an orphan file, never a hole.
        self._blobs.drop(asset.id)

    # ---- the presigned POST ------------------------------------------------------------

    def _upload_details(self, asset: Asset) -> dict[str, str]:
        moment = self.config.wall_clock()
        amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
        details = {
            "acl": "public-read",
            "bucket": STORAGE_BUCKET,
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"SANDBOX/{amz_date[:8]}/sandbox-1/s3/aws4_request",
            "X-Amz-Date": amz_date,
            "key": asset.key,
            "success_action_status": "201",
            "content-type": asset.content_type,
            "Cache-Control": "max-age=31536000, must-revalidate",
        }
        limit = self._size_limit(asset)
        expires = moment + timedelta(seconds=self.config.asset_upload_seconds)
        policy = {
            "expiration": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                *({name: value} for name, value in details.items()),
                ["content-length-range", 1, limit],
            ],
        }
        encoded = base64.b64encode(json.dumps(policy, separators=(",", ":")).encode()).decode()
        details["Policy"] = encoded
        details["X-Amz-Signature"] = self._sign(encoded)
        return details

    def _sign(self, policy: str) -> str:
        return hmac.new(self._secret, policy.encode(), hashlib.sha256).hexdigest()

    def _size_limit(self, asset: Asset) -> int:
        if asset.is_image:
            return self.config.asset_image_max_bytes
        return self.config.asset_file_max_bytes

    @property
    def read_cap(self) -> int:
        """The most bytes a storage POST keeps in memory: past it, the file is only counted."""
        return max(self.config.asset_image_max_bytes, self.config.asset_file_max_bytes) + 1

    def accept_upload(self, bucket: str, form: UploadForm) -> tuple[Asset, str]:
        """Checks a storage POST as S3 would, then the MD5; answers the asset and its ETag."""
        if form.authorization:
            raise StorageError(
                400, "InvalidArgument", "Only one auth mechanism allowed; a presigned POST "
                "carries its policy and signature, not an Authorization header",
            )  # fmt: skip
        if form.data is None:
            raise StorageError(
                400, "InvalidArgument", "POST requires exactly one file upload per request."
            )
        policy = self._verified_policy(form.fields)
        _check_conditions(policy, bucket, form)
        asset = self._asset_for_key(form.fields["key"])
        digest = hashlib.md5(form.data, usedforsecurity=False).hexdigest()
        if digest != asset.file_hash:
            raise StorageError(
                400, "BadDigest", f"The file's MD5 {digest} does not match the fileHash "
                f"{asset.file_hash} given when the asset was created.",
            )  # fmt: skip
        self._blobs.put(asset.id, form.data)
        asset.size = form.size
        asset.uploaded = True
        asset.last_updated = self._hooks.now()
        self._put(asset)
        self._hooks.commit()
        return asset, digest

    def _verified_policy(self, fields: Mapping[str, str]) -> dict[str, Any]:
        for name in ("key", "policy", "x-amz-signature", "x-amz-algorithm", "x-amz-credential"):
            if name not in fields:
                raise StorageError(
                    400, "InvalidArgument", f"Bucket POST must contain a field named '{name}'."
                )
        encoded = fields["policy"]
        # Bytes: compare_digest refuses str with non-ASCII characters (a forged field may hold any).
        given = fields["x-amz-signature"].encode("utf-8", "replace")
        if not hmac.compare_digest(self._sign(encoded).encode(), given):
            raise StorageError(
                403, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )  # fmt: skip
        policy: dict[str, Any] = json.loads(base64.b64decode(encoded))
        expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        if self.config.wall_clock() >= expires:
            raise StorageError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        return policy

    def _asset_for_key(self, key: str) -> Asset:
        asset_id = PurePosixPath(key).name.partition("_")[0]
        asset = self.assets.get(asset_id)
        if asset is None or asset.key != key:
            raise StorageError(403, "AccessDenied", f"No asset holds the key {key!r} any more.")
        return asset

    def hosted(self, site_id: str, file_name: str) -> tuple[Asset, bytes] | None:
        asset = self.assets.get(file_name.partition("_")[0])
        if asset is None or asset.site_id != site_id or not asset.uploaded:
            return None
        if file_name != f"{asset.id}_{asset.file_name}":
            return None
        data = self._blobs.get(asset.id)
        return None if data is None else (asset, data)


def _check_conditions(policy: Mapping[str, Any], bucket: str, form: UploadForm) -> None:
    covered = set(_UNSIGNED_FIELDS)
    for condition in policy["conditions"]:
        if isinstance(condition, list):  # ["content-length-range", low, high]
            _, low, high = condition
            if form.size > high:
                raise StorageError(
                    400, "EntityTooLarge",
                    f"Your proposed upload ({form.size} bytes) exceeds the maximum allowed size "
                    f"({high} bytes).",
                )  # fmt: skip
            if form.size < low:
                raise StorageError(400, "EntityTooSmall", "Your proposed upload is empty.")
            continue
        ((name, expected),) = condition.items()
        name = name.lower()
        covered.add(name)
        actual = bucket if name == "bucket" else form.fields.get(name)
        if actual != expected:
            raise StorageError(
                403, "AccessDenied",
                f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}", '
                f'"{expected}"]',
            )  # fmt: skip
    extra = sorted(set(form.fields) - covered)
    if extra:
        raise StorageError(
            403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {extra}"
        )


async def receive_upload(request: web.Request, store: AssetStore) -> web.Response:
    """The storage endpoint: reads the multipart POST, then lets the store judge it."""
    try:
        try:
            form = await _read_form(request, store.read_cap)
        except (ValueError, HttpProcessingError) as problem:  # aiohttp: not valid multipart
            raise StorageError(
                400, "MalformedPOSTRequest", f"The body of your POST request is not well-formed "
                f"multipart/form-data: {problem}",
            ) from None  # fmt: skip
        asset, digest = store.accept_upload(request.match_info["bucket"], form)
    except StorageError as refusal:
        return refusal.response()
    location = asset.hosted_url(store.public_root)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<PostResponse><Location>{escape(location)}</Location>"
        f"<Bucket>{STORAGE_BUCKET}</Bucket><Key>{escape(asset.key)}</Key>"
        f'<ETag>"{digest}"</ETag></PostResponse>'
    )
    return web.Response(
        text=body, status=201, content_type="application/xml", headers={"ETag": f'"{digest}"'}
    )


async def _read_form(request: web.Request, cap: int) -> UploadForm:
    form = UploadForm(authorization="Authorization" in request.headers)
    if not request.content_type.startswith("multipart/form-data"):
        raise StorageError(
            412, "PreconditionFailed", "Bucket POST must be of the enclosure-type "
            "multipart/form-data",
        )  # fmt: skip
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        name = part.name.lower()
        if name != "file":
            form.fields[name] = (await part.read()).decode("utf-8", "replace")
            continue
        kept = bytearray()
        while chunk := await part.read_chunk(256 * 1024):
            form.size += len(chunk)
            if len(kept) < cap:
                kept.extend(chunk[: cap - len(kept)])
        form.data = bytes(kept)
        # S3 ignores every field after the file.
        break
    return form


async def serve_asset(request: web.Request, store: AssetStore) -> web.Response:
    """An uploaded asset's bytes at its hostedUrl; 404 (S3's NoSuchKey) before the upload."""
    info = request.match_info
    found = store.hosted(info["site_id"], info["file_name"])
    if found is None:
        return StorageError(404, "NoSuchKey", "The specified key does not exist.").response()
    asset, data = found
    return web.Response(
        body=data,
        content_type=asset.content_type,
        headers={"Cache-Control": "max-age=31536000, must-revalidate"},
    )


def _request_object(body: object, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "Request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise validation_error(
            f"Unknown key(s) in request body: {', '.join(unknown)}",
            [{"param": key, "description": "unknown key"} for key in unknown],
        )
    return body


def _file_name(value: object) -> str:
    def refuse(description: str) -> ApiError:
        return validation_error(
            f"fileName {description}", [{"param": "fileName", "description": description}]
        )

    if not isinstance(value, str) or not value.strip():
        raise refuse("is required and must be a non-empty string")
    if len(value) >= _FILE_NAME_MAX:
        raise refuse(f"must be less than {_FILE_NAME_MAX} characters")
    if "/" in value or "\\" in value or any(ord(c) < 32 for c in value):
        raise refuse("must not contain slashes or control characters")
    extension = value.rpartition(".")[2].lower() if "." in value else ""
    if extension not in ASSET_CONTENT_TYPES:
        raise refuse(f"has an unsupported file type {extension!r}")
    return value


def _int_query(
    query: Mapping[str, str], key: str, default: int, minimum: int, maximum: int | None
) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        raise validation_error(
            f"{key} must be an integer >= {minimum}" + (f" and <= {maximum}" if maximum else ""),
            [{"param": key, "description": f"invalid value {raw!r}"}],
        )
    return value
