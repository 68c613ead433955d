"""Average linkage with cannot-link and existing groups, on synthetic embeddings (no model)."""
from __future__ import annotations

import numpy as np

from facegate.edge_runtime.bundle import load_bundle
from facegate.edge_runtime.eval.clustering_metrics import clustering_scores, dbscan_cosine
from facegate.edge_runtime.photos.cluster import average_linkage, linkage_threshold, neighbour_edges


def people(n_people=50, per=8, dim=32, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n_people, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    emb = np.repeat(c, per, 0) + noise * rng.normal(size=(n_people * per, dim))
    return emb.astype(np.float32), np.repeat(np.arange(n_people), per)


def test_separated_people_are_found_exactly():
    emb, truth = people()
    labels = average_linkage(emb, np.arange(len(emb)), np.full(len(emb), -1), "cosine", 0.5)
    assert clustering_scores(truth, labels)["pairwise_f1"] == 1.0


def test_faces_of_one_photo_never_share_a_cluster():
    emb, truth = people(5, 6)
    photos = np.arange(len(emb))
    photos[[0, 1, 2]] = 0                    # three faces of person 0 in one photo
    labels = average_linkage(emb, photos, np.full(len(emb), -1), "cosine", 0.5)
    assert len(set(labels[[0, 1, 2]].tolist())) == 3


def test_existing_groups_keep_their_labels_and_are_never_merged():
    emb, truth = people(6, 5)
    initial = np.full(len(emb), -1)
    initial[truth == 0] = 40
    initial[(truth == 1)] = 41
    initial[np.flatnonzero(truth == 2)[:2]] = 42          # a user's wrong split of person 2 ...
    initial[np.flatnonzero(truth == 2)[2:4]] = 43         # ... is kept
    labels = average_linkage(emb, np.arange(len(emb)), initial, "cosine", 0.5)
    assert (labels[initial >= 0] == initial[initial >= 0]).all()
    assert set(labels[truth == 0].tolist()) == {40}                 # new faces joined their person
    assert labels[np.flatnonzero(truth == 2)[4]] in (42, 43)
    assert labels[truth == 5].min() > 43 and len(set(labels[truth == 5].tolist())) == 1


def test_one_lookalike_pair_does_not_chain_two_people():
    """Two people bridged by one near-identical pair: average linkage keeps them apart, DBSCAN (min 1) chains."""
    emb, truth = people(2, 10, noise=0.05)
    emb[9] = emb[10] = (emb[9] + emb[10]) / 2              # one face of each looks like the other
    labels = average_linkage(emb, np.arange(len(emb)), np.full(len(emb), -1), "cosine", 0.6)
    sizes = np.bincount(labels)
    assert sorted(sizes[sizes > 0].tolist())[-2:] >= [9, 9]           # two people, the lookalike on one side
    assert len(set(dbscan_cosine(emb, eps=0.5, min_samples=1).tolist())) == 1


def test_neighbours_are_found_in_blocks_without_a_full_matrix():
    emb, _ = people(100, 10)
    a, b, s = neighbour_edges(emb, np.arange(len(emb)), "cosine", 0.5, k=5, block_cells=len(emb) * 7)
    assert len(a) == len(emb) * 5 and (a != b).all() and (s >= 0.5).all()


def test_threshold_comes_from_the_bundles_impostor_model():
    bundle = load_bundle()
    model = bundle.score_model
    t = linkage_threshold(model, 1e-5)
    assert model.exceedance(t) == __import__("pytest").approx(1e-5, rel=1e-3)
    assert linkage_threshold(model, 1e-6) > t > linkage_threshold(model, 1e-4)
