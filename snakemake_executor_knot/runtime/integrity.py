"""The spec object's integrity: a SHA-256 Merkle tree over the records of one submission.

SubmitJob carries the tree's root (``KNOT_SPEC_SHA256``), which only the submitter could set.
Each record holds its own document and the sibling hashes on the way to the root, so an
array child that reads only its own record (one ranged GET) can still check it against the
root before it decodes, let alone runs, anything. The array index is hashed into the leaf,
so a record moved to another child's slot fails too.

The host builds the tree and the container checks it; both import this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# Domain separation: a leaf can never be taken for an inner node, or the reverse.
_LEAF, _NODE = b"\x00", b"\x01"
LEFT, RIGHT = "L", "R"  # where the sibling sits


def leaf_digest(index: int, document: bytes) -> bytes:
    return hashlib.sha256(_LEAF + index.to_bytes(8, "big") + document).digest()


def node_digest(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def merkle_tree(documents: Sequence[bytes]) -> tuple[str, list[list[str]]]:
    """The root (hex) of the documents' tree, and each document's proof: the sibling
    hashes from its leaf up, each as "L<hex>" or "R<hex>". A node without a sibling
    moves up unchanged."""
    level = [leaf_digest(i, doc) for i, doc in enumerate(documents)]
    proofs: list[list[str]] = [[] for _ in documents]
    members = [[i] for i in range(len(documents))]  # the leaves under each node
    while len(level) > 1:
        level, members = _next_level(level, members, proofs)
    return (level[0].hex() if level else ""), proofs


def _next_level(
    level: list[bytes], members: list[list[int]], proofs: list[list[str]]
) -> tuple[list[bytes], list[list[int]]]:
    """Pair up one level's nodes, adding each node's sibling to the proofs below it."""
    parents, parent_members = [], []
    for start in range(0, len(level), 2):
        pair = level[start : start + 2]
        if len(pair) == 1:
            parents.append(pair[0])
            parent_members.append(members[start])
            continue
        left, right = pair
        for leaf in members[start]:
            proofs[leaf].append(RIGHT + right.hex())
        for leaf in members[start + 1]:
            proofs[leaf].append(LEFT + left.hex())
        parents.append(node_digest(left, right))
        parent_members.append(members[start] + members[start + 1])
    return parents, parent_members


def root_from_proof(index: int, document: bytes, proof: Sequence[str]) -> str:
    """The root a record's proof leads to; equal to the submitted root only if neither
    the document, its index nor the proof was changed."""
    digest = leaf_digest(index, document)
    for step in proof:
        side, sibling = step[:1], bytes.fromhex(step[1:])
        if side == LEFT:
            digest = node_digest(sibling, digest)
        elif side == RIGHT:
            digest = node_digest(digest, sibling)
        else:
            raise ValueError(f"proof step {step[:8]!r}... names no side")
    return digest.hex()
