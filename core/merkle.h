/*
 * merkle.h — RFC 6962 / RFC 9162 Merkle tree hashing with SHA-256.
 *
 * The audit log's leaves and tree heads follow the Certificate Transparency
 * rules exactly, so that any third-party tool can check our inclusion and
 * consistency proofs:
 *
 *   leaf hash  = SHA-256(0x00 || entry bytes)
 *   node hash  = SHA-256(0x01 || left || right)
 *   MTH({})    = SHA-256("")             (the empty tree)
 *   MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k = largest power of 2 < n
 *
 * A frontier is the compact state of an append-only tree: one perfect-subtree
 * hash per set bit of the tree size (at most 64).  It supports O(log n)
 * append and the root at the current size, and is all a log writer has to
 * keep.  Proofs come in two flavours with identical output: from leaf hashes
 * (a callback per leaf, about n fetches: the reference, and all an outsider
 * holding only the leaves can do), and from stored perfect-subtree roots
 * ("nodes", a callback per node, O(log n) fetches).  Either way this module
 * knows nothing about where hashes live; proof verification is pure (no I/O,
 * no state beyond the hasher's scratch context).
 *
 * Nodes: node (level, index) is MTH(D[index * 2^level : (index + 1) * 2^level]),
 * the root of a perfect subtree; level 0 is leaf `index` itself.  A tree of
 * n leaves has node (level, index) exactly when (index + 1) * 2^level <= n,
 * and it never changes once the tree has grown past it.
 *
 * This module never sees entry contents other than the bytes it hashes, and
 * never touches a database.
 */
#ifndef KM_MERKLE_H
#define KM_MERKLE_H

#include "km.h"

#define MERKLE_HASH_BYTES 32
/* A tree of size < 2^64 has at most 64 levels of perfect subtrees. */
#define MERKLE_MAX_LEVELS 64
/* Longest inclusion proof is 64 hashes; a consistency proof can hold one
 * more (the first tree's subroot when it is not a power of two). */
#define MERKLE_PROOF_MAX 65

/* Scratch state for hashing: one SHA-256 EVP_MD fetched once and one
 * EVP_MD_CTX reused for every hash (EVP_DigestInit_ex2), which is several
 * times faster than a fresh context per hash.  Not thread-safe: one per
 * thread. */
typedef struct merkle_hasher merkle_hasher;

km_status merkle_hasher_new(merkle_hasher **out, km_err *e);
void merkle_hasher_free(merkle_hasher *h); /* NULL is fine */

/* out = SHA-256(0x00 || data[0..len)).  data may be NULL when len is 0. */
km_status merkle_leaf_hash(merkle_hasher *h, const void *data, size_t len,
                           uint8_t out[MERKLE_HASH_BYTES], km_err *e);

/* out = SHA-256(0x01 || left || right).  out may alias left or right. */
km_status merkle_node_hash(merkle_hasher *h, const uint8_t left[MERKLE_HASH_BYTES],
                           const uint8_t right[MERKLE_HASH_BYTES],
                           uint8_t out[MERKLE_HASH_BYTES], km_err *e);

/* out = SHA-256(data): the root of the empty tree when len is 0, and the
 * digest that audit tree-head signatures are made over. */
km_status merkle_sha256(merkle_hasher *h, const void *data, size_t len,
                        uint8_t out[MERKLE_HASH_BYTES], km_err *e);

/* The compact state of a tree of `size` leaves: hash[level] is the root of
 * the perfect subtree of 2^level leaves, valid exactly when bit `level` of
 * size is set; the subtrees sit left to right from the highest set bit to
 * the lowest.  Plain data: may be copied, stored and compared. */
typedef struct merkle_frontier {
	uint64_t size;
	uint8_t hash[MERKLE_MAX_LEVELS][MERKLE_HASH_BYTES];
} merkle_frontier;

/* The empty tree. */
void merkle_frontier_init(merkle_frontier *f);

/* Append one leaf hash; O(log n) node hashes.  *level_out (may be NULL)
 * receives the level at which the new subtree landed: every level below it
 * was merged away, which is what a stored copy of the frontier must drop.
 * KM_ELIMIT at 2^64 - 1 leaves. */
km_status merkle_frontier_append(merkle_hasher *h, merkle_frontier *f,
                                 const uint8_t leaf[MERKLE_HASH_BYTES],
                                 unsigned *level_out, km_err *e);

/* The same, also handing out the nodes the append completed: with L the
 * level reported, nodes[l] for l = 1..L receives node (l, (f->size >> l) - 1)
 * (f->size after the append): the perfect subtree of 2^l leaves that ends
 * with the new leaf.  These are exactly the nodes of level >= 1 that the tree
 * gains with this leaf.  nodes (may be NULL) must hold MERKLE_MAX_LEVELS
 * hashes; entries other than 1..L are left alone. */
km_status merkle_frontier_append_nodes(merkle_hasher *h, merkle_frontier *f,
                                       const uint8_t leaf[MERKLE_HASH_BYTES],
                                       uint8_t (*nodes)[MERKLE_HASH_BYTES],
                                       unsigned *level_out, km_err *e);

/* The Merkle tree hash at f->size: the subtrees folded from the rightmost
 * (smallest) leftwards.  SHA-256("") for the empty tree. */
km_status merkle_frontier_root(merkle_hasher *h, const merkle_frontier *f,
                               uint8_t root[MERKLE_HASH_BYTES], km_err *e);

/* Fetch the hash of leaf `index` (0-based).  Proof generation calls it for
 * contiguous runs of ascending indexes, restarting once per subtree. */
typedef km_status (*merkle_leaf_fn)(void *ctx, uint64_t index,
                                    uint8_t out[MERKLE_HASH_BYTES], km_err *e);

/* MTH(D[start:end]) for 0 <= start < end, computed with a local frontier:
 * end - start leaf fetches, O(log) memory. */
km_status merkle_range_root(merkle_hasher *h, merkle_leaf_fn leaf, void *ctx,
                            uint64_t start, uint64_t end,
                            uint8_t out[MERKLE_HASH_BYTES], km_err *e);

/* Inclusion proof (audit path, RFC 9162 2.1.3.1) of leaf `index` in the tree
 * of the first `size` leaves, leaf-most hash first.  proof must hold cap
 * hashes (MERKLE_PROOF_MAX always suffices).  Costs about `size` leaf fetches.
 * KM_EUSAGE if index >= size. */
km_status merkle_inclusion_proof(merkle_hasher *h, merkle_leaf_fn leaf, void *ctx,
                                 uint64_t index, uint64_t size,
                                 uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                 size_t *proof_len, km_err *e);

/* Consistency proof (RFC 9162 2.1.4.1) between the trees of the first
 * `first` and the first `second` leaves.  Empty when first is 0 or equals
 * second.  KM_EUSAGE if first > second. */
km_status merkle_consistency_proof(merkle_hasher *h, merkle_leaf_fn leaf, void *ctx,
                                   uint64_t first, uint64_t second,
                                   uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                   size_t *proof_len, km_err *e);

/* Fetch node (level, index) (see the top of this file; level 0 is leaf
 * `index`).  Called only for nodes inside the tree the caller asked about. */
typedef km_status (*merkle_node_fn)(void *ctx, unsigned level, uint64_t index,
                                    uint8_t out[MERKLE_HASH_BYTES], km_err *e);

/* MTH(D[start:end]) folded from the perfect subtrees that tile the range,
 * one per set bit of end - start (at most 64 fetches).  The range must be
 * one the RFC's split can produce: start a multiple of the largest power of
 * two <= end - start (every range a proof needs, and [0, n), qualify);
 * KM_EUSAGE otherwise or if start >= end. */
km_status merkle_range_root_nodes(merkle_hasher *h, merkle_node_fn node, void *ctx,
                                  uint64_t start, uint64_t end,
                                  uint8_t out[MERKLE_HASH_BYTES], km_err *e);

/* merkle_inclusion_proof and merkle_consistency_proof, byte for byte, from
 * nodes: O(log size) node fetches (at most 2 * 64) instead of about size
 * leaf fetches. */
km_status merkle_inclusion_proof_nodes(merkle_hasher *h, merkle_node_fn node, void *ctx,
                                       uint64_t index, uint64_t size,
                                       uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                       size_t *proof_len, km_err *e);
km_status merkle_consistency_proof_nodes(merkle_hasher *h, merkle_node_fn node, void *ctx,
                                         uint64_t first, uint64_t second,
                                         uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                         size_t *proof_len, km_err *e);

/* Verify that `leaf` is leaf `index` of the tree of `size` leaves whose root
 * is `root` (RFC 9162 2.1.3.2).  KM_OK when proven; KM_EINTEGRITY (with a
 * reason) when not; another status only if hashing itself failed. */
km_status merkle_verify_inclusion(merkle_hasher *h, const uint8_t leaf[MERKLE_HASH_BYTES],
                                  uint64_t index, uint64_t size,
                                  const uint8_t (*proof)[MERKLE_HASH_BYTES], size_t proof_len,
                                  const uint8_t root[MERKLE_HASH_BYTES], km_err *e);

/* Verify that the tree of `first` leaves with root first_root is a prefix of
 * the tree of `second` leaves with root second_root (RFC 9162 2.1.4.2, plus
 * the two trivial cases: first == second needs an empty proof and equal
 * roots; first == 0 needs an empty proof).  KM_OK / KM_EINTEGRITY as above. */
km_status merkle_verify_consistency(merkle_hasher *h, uint64_t first, uint64_t second,
                                    const uint8_t first_root[MERKLE_HASH_BYTES],
                                    const uint8_t second_root[MERKLE_HASH_BYTES],
                                    const uint8_t (*proof)[MERKLE_HASH_BYTES], size_t proof_len,
                                    km_err *e);

#endif
