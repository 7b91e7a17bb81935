"""The OCI vocabulary: digests, repository names and references, media types, descriptors,
manifests and Accept negotiation. Pure functions and value types; no I/O.

Sources: OCI distribution spec v1.1 and OCI image spec v1.1 (see each module).
"""

from berth_common.oci.accept import acceptable_for, accepts, parse_accept
from berth_common.oci.descriptor import Descriptor
from berth_common.oci.digest import Digest
from berth_common.oci.manifest import MAX_MANIFEST_BYTES, ParsedManifest, parse_manifest
from berth_common.oci.reference import RepositoryName, is_valid_tag, parse_reference, split_v2_path

__all__ = [
    "MAX_MANIFEST_BYTES",
    "Descriptor",
    "Digest",
    "ParsedManifest",
    "RepositoryName",
    "acceptable_for",
    "accepts",
    "is_valid_tag",
    "parse_accept",
    "parse_manifest",
    "parse_reference",
    "split_v2_path",
]
