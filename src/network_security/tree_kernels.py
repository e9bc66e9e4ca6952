"""Tree ensembles evaluated by small numba kernels (used by ``network_security.tree_predictor``).

Each kernel walks every tree of one fitted ensemble for every row and adds the value of the
leaf it reaches to ``out`` (which holds the starting value: 0 for a forest, the baseline for
gradient boosting), tree after tree in the ensemble's order, so each row's sum is the same
floating-point sum as scikit-learn's. The trees are first laid out as flat arrays
(``forest_tables``, ``boosting_tables``); the loops run tree by tree over all rows, so one
tree's nodes stay in cache.

- Forests (random forest, extra trees): deep trees of numeric thresholds. Every row takes the
  tree's full depth, leaves pointing to themselves, and the next node is ``child[3 * node +
  k]`` (k: 0 left, 1 right, 2 a missing value): no branch to mispredict; thresholds in
  float32, rounded down, give the same comparisons with half the memory.
- Gradient boosting (``HistGradientBoostingClassifier``'s predictors): shallow trees with
  categorical splits (bitsets), walked as scikit-learn's ``_predict_from_raw_data`` walks them,
  about 2x faster (no per-tree call, no node copies).
- Variants of rows (``variant_groups``, ``variant_sums``; for reasons, each row with one
  indicator changed, up to 30 per row): every tree in the boosting layout (``forest_node_tables``
  for forests), walked once per row and once more per group of variants from the node where
  they leave the row's path: the same sums as walking each variant, in a few paths per tree
  instead of one per variant.
- ``indicator_counts``, ``category_codes``: the engineered indicator counts and gradient
  boosting's ordinal category codes, one pass over the rows each.

Importing this module imports numba; the kernels compile on first use and are cached beside
this file (numba's ``cache=True``; ``NUMBA_CACHE_DIR`` elsewhere).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

FOREST_BLOCK_ROWS = 2048
"""Rows a forest's trees walk together (100,000 rows: 0.89 s in blocks of 2,048, 1.21 s in one)."""
VARIANT_BLOCK_ROWS = 256
"""Rows whose variants walk the trees together in ``variant_sums``."""


@njit(cache=True, nogil=True)
def forest_sums(X, roots, depths, feature, threshold, child, value, out):
    """Add each tree's leaf value to ``out[i]`` for each row ``i`` of ``X``."""
    n = X.shape[0]
    nodes = np.empty(min(n, FOREST_BLOCK_ROWS), np.int32)
    for start in range(0, n, FOREST_BLOCK_ROWS):  # a block of rows stays in cache
        stop = min(start + FOREST_BLOCK_ROWS, n)
        for t in range(roots.shape[0]):
            nodes[:] = roots[t]
            for _ in range(depths[t]):
                for i in range(start, stop):
                    node = nodes[i - start]
                    x = X[i, feature[node]]
                    # the left child, the right one (x > threshold) or the one for missing values
                    nodes[i - start] = child[3 * node + (x > threshold[node]) + 2 * (x != x)]
            for i in range(start, stop):
                out[i] += value[nodes[i - start]]
    return out


@njit(cache=True, nogil=True)
def boosting_sums(X, roots, feature, threshold, missing_left, categorical, bitset_row,
                  left_bitsets, known_bitsets, known_row, left, right, value, out):  # fmt: skip
    """Add each tree's leaf value to ``out[i]``, with scikit-learn's rules for missing values,
    categories going left (``left_bitsets``) and unknown categories (treated as missing)."""
    n = X.shape[0]
    for t in range(roots.shape[0]):
        for i in range(n):
            node = roots[t]
            while left[node] >= 0:
                x = X[i, feature[node]]
                if np.isnan(x):
                    go_left = missing_left[node]
                elif categorical[node]:
                    if x < 0:
                        go_left = missing_left[node]
                    else:
                        code = np.uint32(np.uint8(x))  # scikit-learn's cast to a bin code
                        word, bit = code >> 5, code & 31
                        if (left_bitsets[bitset_row[node], word] >> bit) & 1:
                            go_left = True
                        elif (known_bitsets[known_row[feature[node]], word] >> bit) & 1:
                            go_left = False
                        else:
                            go_left = missing_left[node]
                else:
                    go_left = x <= threshold[node]
                node = left[node] if go_left else right[node]
            out[i] += value[node]
    return out


@njit(cache=True, nogil=True)
def indicator_counts(X, columns, values, out):
    """``out[i]``: the cells ``X[i, columns]``, then how many of them equal each of ``values``
    (``IndicatorCountFeatures`` in one pass over the rows)."""
    for i in range(X.shape[0]):
        for v in range(values.shape[0]):
            out[i, columns.shape[0] + v] = 0.0
        for p in range(columns.shape[0]):
            x = X[i, columns[p]]
            out[i, p] = x
            for v in range(values.shape[0]):
                if x == values[v]:
                    out[i, columns.shape[0] + v] += 1.0
    return out


@njit(cache=True, nogil=True)
def category_codes(X, columns, table, out):
    """``out[i, p]``: the position of ``X[i, columns[p]]`` among the values of ``table[p]``
    (sorted, NaN-padded), NaN when absent: gradient boosting's ordinal category codes."""
    for i in range(X.shape[0]):
        for p in range(columns.shape[0]):
            x = X[i, columns[p]]
            out[i, p] = np.nan
            for k in range(table.shape[1]):
                if table[p, k] == x:
                    out[i, p] = k
                    break
    return out


@njit(cache=True, nogil=True)
def variant_groups(B, V, width):
    """For each row ``i`` and column ``f``: the variants ``s`` whose ``V[i, s, f]`` differs from
    ``B[i, f]``, grouped by that value (an indicator's other values; a count one up or one
    down): the group count, values and bit masks (bit ``s``) that ``variant_sums`` routes by,
    and whether ``width`` groups per cell were enough (else call again with more)."""
    n, variants, columns = V.shape
    count = np.zeros((n, columns), np.int64)
    values = np.zeros((n, columns, width), np.float64)
    masks = np.zeros((n, columns, width), np.uint64)
    for i in range(n):
        for s in range(variants):
            for f in range(columns):
                x, base = V[i, s, f], B[i, f]
                if x == base or (x != x and base != base):
                    continue
                k, g = count[i, f], 0
                while g < k and not (
                    values[i, f, g] == x or (x != x and np.isnan(values[i, f, g]))
                ):
                    g += 1
                if g == width:
                    return count, values, masks, False
                if g == k:
                    values[i, f, g], count[i, f] = x, k + 1
                masks[i, f, g] |= np.uint64(1) << np.uint64(s)
    return count, values, masks, True


@njit(cache=True, nogil=True)
def variant_sums(B, V, count, values, masks, roots, feature, threshold,  # noqa: C901, PLR0912
                 missing_left, categorical, bitset_row, left_bitsets, known_bitsets, known_row,
                 left, right, value, out):  # fmt: skip
    """``out[i, s]`` += each tree's leaf value for variant ``s`` of row ``i`` (``V[i, s]``), and
    ``out[i, S]`` for the row itself (``B[i]``), in tree order: the sums ``boosting_sums`` gives
    for those rows one by one. Each tree is walked once per row, and once more per group of
    variants from the node where the group leaves the row's path (``variant_groups``), instead
    of once per variant: a row's variants mostly share their paths. (One function: a call per
    node to a helper taking the tables made it 4x slower, measured.)"""
    n, variants, _ = V.shape
    everyone = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(63 - variants)  # bits 0..variants
    stack_node, stack_mask = np.empty(variants + 2, np.int64), np.empty(variants + 2, np.uint64)
    leaves = np.empty(variants + 1, np.float64)
    for start in range(0, n, VARIANT_BLOCK_ROWS):
        for t in range(roots.shape[0]):
            for i in range(start, min(start + VARIANT_BLOCK_ROWS, n)):
                stack_node[0], stack_mask[0], top = roots[t], everyone, 1
                while top:  # the row's own path first: it fills ``leaves``
                    top -= 1
                    node, mask = stack_node[top], stack_mask[top]
                    while left[node] >= 0 and mask:
                        f = feature[node]
                        # g = -1: the row's own value; then each group of changed values
                        for g in range(-1, count[i, f]):
                            x = B[i, f] if g < 0 else values[i, f, g]
                            moved = everyone if g < 0 else mask & masks[i, f, g]
                            if not moved:
                                continue
                            if np.isnan(x) or (categorical[node] and x < 0):
                                go_left = missing_left[node]
                            elif not categorical[node]:
                                go_left = x <= threshold[node]
                            else:  # scikit-learn's bin code and bitsets, as in boosting_sums
                                code = np.uint32(np.uint8(x))
                                word, bit = code >> 5, code & 31
                                go_left = (left_bitsets[bitset_row[node], word] >> bit) & 1 or (
                                    not (known_bitsets[known_row[f], word] >> bit) & 1
                                    and missing_left[node]
                                )
                            child = left[node] if go_left else right[node]
                            if g < 0:
                                nxt = child
                            elif child != nxt:  # this group leaves the row's path here
                                stack_node[top], stack_mask[top] = child, moved
                                top += 1
                                mask &= ~moved
                        node = nxt
                    if mask >> np.uint64(variants):
                        leaves[:] = value[node]  # the row's leaf: every variant still with it
                    else:
                        while mask:
                            low = mask & (~mask + np.uint64(1))
                            leaves[math.frexp(float(low))[1] - 1] = value[node]  # bit position
                            mask ^= low
                for s in range(variants + 1):
                    out[i, s] += leaves[s]
    return out


def forest_tables(classifier: Any, column: int) -> dict[str, np.ndarray]:
    """The trees of a fitted forest as ``forest_sums``'s arrays (leaf values: P(``column``))."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "child", "value")}
    roots, depths, offset = [], [], 0
    for estimator in classifier.estimators_:
        tree = estimator.tree_
        count, leaf = tree.node_count, tree.children_left < 0
        itself = np.arange(count)
        left = np.where(leaf, itself, tree.children_left)
        right = np.where(leaf, itself, tree.children_right)
        missing = np.where(tree.missing_go_to_left.astype(bool), left, right)
        parts["child"].append(np.column_stack([left, right, missing]).ravel() + offset)
        parts["feature"].append(np.where(leaf, 0, tree.feature))
        parts["threshold"].append(np.where(leaf, np.inf, tree.threshold))  # never right
        parts["value"].append(tree.value[:, 0, column])
        roots.append(offset)
        depths.append(tree.max_depth)
        offset += count
    tables = {key: np.concatenate(values) for key, values in parts.items()}
    return {
        "roots": np.asarray(roots, np.int64),
        "depths": np.asarray(depths, np.int64),
        "feature": tables["feature"].astype(np.int32),
        "threshold": _float32_below(tables["threshold"]),
        "child": tables["child"].astype(np.int32),
        "value": np.ascontiguousarray(tables["value"], dtype=np.float64),
    }


def forest_node_tables(classifier: Any, column: int) -> dict[str, np.ndarray]:
    """The trees of a fitted forest in ``boosting_tables``'s layout (numeric splits only, leaf
    values P(``column``)), for ``variant_sums``; its input: the rows rounded to float32, as the
    forest compares them."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "missing_left",
                                                          "left", "right", "value")}  # fmt: skip
    roots, offset = [], 0
    for estimator in classifier.estimators_:
        tree = estimator.tree_
        leaf = tree.children_left < 0
        parts["left"].append(np.where(leaf, -1, tree.children_left + offset))
        parts["right"].append(np.where(leaf, -1, tree.children_right + offset))
        parts["feature"].append(np.where(leaf, 0, tree.feature))
        parts["threshold"].append(tree.threshold)
        parts["missing_left"].append(tree.missing_go_to_left.astype(bool))
        parts["value"].append(tree.value[:, 0, column])
        roots.append(offset)
        offset += tree.node_count
    tables = {key: np.concatenate(values) for key, values in parts.items()}
    empty = np.zeros((1, 8), np.uint32)
    return {
        "roots": np.asarray(roots, np.int64),
        "feature": tables["feature"].astype(np.int32),
        "threshold": tables["threshold"].astype(np.float64),
        "missing_left": tables["missing_left"],
        "categorical": np.zeros(offset, bool),
        "bitset_row": np.zeros(offset, np.int32),
        "left_bitsets": empty,
        "known_bitsets": empty,
        "known_row": np.zeros(classifier.n_features_in_, np.int64),
        "left": tables["left"].astype(np.int32),
        "right": tables["right"].astype(np.int32),
        "value": np.ascontiguousarray(tables["value"], dtype=np.float64),
    }


def _float32_below(threshold: np.ndarray) -> np.ndarray:
    """Each threshold as the largest float32 at or below it: for a float32 input ``x``,
    ``x > float32_below(t)`` exactly when ``x > t`` (half the memory of float64 thresholds)."""
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def boosting_tables(classifier: Any) -> dict[str, np.ndarray]:
    """The trees of a fitted binary ``HistGradientBoostingClassifier`` as ``boosting_sums``'s
    arrays (the input: the matrix its predictors take, after its category encoder)."""
    known, known_row = classifier._bin_mapper.make_known_categories_bitsets()
    keys = ("feature", "threshold", "missing_left", "categorical", "bitset_row", "left_bitsets",
            "left", "right", "value")  # fmt: skip
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    roots, offset, bitsets = [], 0, 0
    for (predictor,) in classifier._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        parts["left"].append(np.where(leaf, -1, nodes["left"].astype(np.int64) + offset))
        parts["right"].append(np.where(leaf, -1, nodes["right"].astype(np.int64) + offset))
        parts["feature"].append(nodes["feature_idx"].astype(np.int64))
        parts["threshold"].append(nodes["num_threshold"])
        parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
        parts["categorical"].append(nodes["is_categorical"].astype(bool))
        parts["bitset_row"].append(nodes["bitset_idx"].astype(np.int64) + bitsets)
        parts["left_bitsets"].append(predictor.raw_left_cat_bitsets.reshape(-1, 8))
        parts["value"].append(nodes["value"])
        roots.append(offset)
        offset += len(nodes)
        bitsets += len(predictor.raw_left_cat_bitsets)
    tables = {key: np.concatenate(values) for key, values in parts.items()}
    empty = np.zeros((1, 8), np.uint32)  # a row to index when there is no categorical split
    return {
        "roots": np.asarray(roots, np.int64),
        "feature": tables["feature"],
        "threshold": tables["threshold"].astype(np.float64),
        "missing_left": tables["missing_left"],
        "categorical": tables["categorical"],
        "bitset_row": tables["bitset_row"],
        "left_bitsets": np.ascontiguousarray(
            tables["left_bitsets"] if bitsets else empty, dtype=np.uint32
        ),
        "known_bitsets": np.ascontiguousarray(known if len(known) else empty, dtype=np.uint32),
        "known_row": np.asarray(known_row, np.int64),
        "left": tables["left"],
        "right": tables["right"],
        "value": tables["value"].astype(np.float64),
    }
