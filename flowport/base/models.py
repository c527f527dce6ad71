"""Typed views of the Webflow Data API v2 objects flowport reads (see ../shared/webflow-openapi)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Asset",
    "AssetList",
    "AssetUpload",
    "CollectionList",
    "CollectionSchema",
    "FieldSchema",
    "FieldType",
    "Item",
    "ItemList",
    "Locale",
    "Pagination",
    "PublishResult",
    "Site",
    "SiteList",
    "SiteLocales",
]

FieldType = Literal[
    "Color",
    "DateTime",
    "Email",
    "ExtFileRef",
    "File",
    "Image",
    "Link",
    "MultiImage",
    "MultiReference",
    "Number",
    "Option",
    "Phone",
    "PlainText",
    "Reference",
    "RichText",
    "Switch",
    "VideoLink",
]


class _ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class Locale(_ApiModel):
    id: str = ""
    cms_locale_id: str = Field(alias="cmsLocaleId")
    tag: str = ""
    display_name: str = Field(default="", alias="displayName")
    enabled: bool = True


class SiteLocales(_ApiModel):
    primary: Locale | None = None
    secondary: tuple[Locale, ...] = ()


class Site(_ApiModel):
    id: str
    display_name: str = Field(default="", alias="displayName")
    short_name: str = Field(default="", alias="shortName")
    last_published: str | None = Field(default=None, alias="lastPublished")
    locales: SiteLocales = Field(default_factory=SiteLocales)


class FieldSchema(_ApiModel):
    id: str
    slug: str
    display_name: str = Field(alias="displayName")
    type: FieldType
    is_required: bool = Field(default=False, alias="isRequired")
    is_editable: bool = Field(default=True, alias="isEditable")
    help_text: str | None = Field(default=None, alias="helpText")
    validations: dict[str, Any] | None = None

    @property
    def referenced_collection_id(self) -> str | None:
        """The collection a Reference or MultiReference field points to."""
        if self.validations is None:
            return None
        value = self.validations.get("collectionId")
        return str(value) if value else None

    @property
    def options(self) -> dict[str, str]:
        """An Option field's choices: option name -> option id."""
        if self.validations is None:
            return {}
        choices = self.validations.get("options") or []
        return {str(c["name"]): str(c["id"]) for c in choices if "name" in c and "id" in c}


class CollectionSchema(_ApiModel):
    id: str
    display_name: str = Field(alias="displayName")
    singular_name: str = Field(default="", alias="singularName")
    slug: str = ""
    fields: tuple[FieldSchema, ...] = ()

    def field(self, slug: str) -> FieldSchema | None:
        for candidate in self.fields:
            if candidate.slug == slug:
                return candidate
        return None


class Item(_ApiModel):
    id: str
    cms_locale_id: str | None = Field(default=None, alias="cmsLocaleId")
    last_published: str | None = Field(default=None, alias="lastPublished")
    last_updated: str | None = Field(default=None, alias="lastUpdated")
    created_on: str | None = Field(default=None, alias="createdOn")
    is_archived: bool = Field(default=False, alias="isArchived")
    is_draft: bool = Field(default=False, alias="isDraft")
    field_data: dict[str, Any] = Field(default_factory=dict, alias="fieldData")

    @property
    def slug(self) -> str | None:
        value = self.field_data.get("slug")
        return str(value) if value is not None else None


class Pagination(_ApiModel):
    limit: int = 100
    offset: int = 0
    total: int = 0


class PublishResult(_ApiModel):
    published_item_ids: tuple[str, ...] = Field(default=(), alias="publishedItemIds")
    errors: tuple[str, ...] = ()


class Asset(_ApiModel):
    """A file in the site's assets (``GET /assets/{asset_id}``, an entry of the site's list).

    ``size`` is 0 until the presigned upload has landed (the sandbox's reading; Webflow does not
    say), so a listed asset is no proof that its bytes are there."""

    id: str
    hosted_url: str = Field(alias="hostedUrl")
    content_type: str = Field(default="", alias="contentType")
    size: int = 0
    site_id: str = Field(default="", alias="siteId")
    original_file_name: str = Field(default="", alias="originalFileName")
    display_name: str = Field(default="", alias="displayName")
    alt_text: str | None = Field(default=None, alias="altText")
    created_on: str | None = Field(default=None, alias="createdOn")
    last_updated: str | None = Field(default=None, alias="lastUpdated")


class AssetUpload(_ApiModel):
    """The answer to creating an asset: the presigned POST that carries its bytes to storage.

    ``upload_details`` are the form fields to send, in order, before the file itself."""

    id: str
    upload_url: str = Field(alias="uploadUrl")
    upload_details: dict[str, str] = Field(alias="uploadDetails")
    hosted_url: str = Field(alias="hostedUrl")
    content_type: str = Field(default="", alias="contentType")
    original_file_name: str = Field(default="", alias="originalFileName")


# ---- list answers: their keys are required, so an answer without them is not read as empty ----


class SiteList(_ApiModel):
    """``GET /sites``."""

    sites: tuple[Site, ...]


class CollectionList(_ApiModel):
    """``GET /sites/{site_id}/collections``: the collections without their fields."""

    collections: tuple[CollectionSchema, ...]


class ItemList(_ApiModel):
    """``GET /collections/{collection_id}/items`` (and ``/items/live``)."""

    items: tuple[Item, ...]
    pagination: Pagination


class AssetList(_ApiModel):
    """``GET /sites/{site_id}/assets``."""

    assets: tuple[Asset, ...]
    pagination: Pagination = Field(default_factory=Pagination)
