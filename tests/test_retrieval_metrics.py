"""Recall@k checked by hand on tiny cases (ties, several captions per image) and against brute force."""

import itertools

import pytest
import torch

from xlcore.evaluate.retrieval import retrieval_scores


def test_hand_computed_case_with_two_captions_per_image():
    # 3 images on orthogonal axes; captions 0,1 -> image 0, caption 2 -> image 1, caption 3 -> image 2.
    images = torch.eye(3)
    texts = torch.tensor([[1.0, 0.1, 0.0],   # best match image 0: hit at 1
                          [0.0, 1.0, 0.2],   # its image 0 scores 0: rank 3 (behind images 1 and 2)
                          [0.9, 1.0, 0.0],   # image 1 wins: hit at 1
                          [1.0, 0.0, 0.5]])  # image 0 first, image 2 second: rank 2
    scores = retrieval_scores(images, texts, [0, 0, 1, 2], ks=(1, 2, 3))
    assert scores.text_to_image == {1: 50.0, 2: 75.0, 3: 100.0}
    # image 0: captions 0 (cos .995) and 1 (0): best positive caption 0 ranks first -> hit at 1.
    # image 1: caption 2 has cos .743 with image 1, but caption 1 (.981) is higher: rank 2.
    # image 2: caption 3 cos .447; caption 1 has .196: caption 3 is first -> hit at 1.
    assert scores.image_to_text == {1: pytest.approx(200 / 3), 2: 100.0, 3: 100.0}


def test_ties_count_against_the_query():
    images = torch.ones(4, 2)  # every image identical: every similarity ties
    texts = torch.ones(4, 2)
    scores = retrieval_scores(images, texts, [0, 1, 2, 3], ks=(1, 4))
    assert scores.text_to_image == {1: 0.0, 4: 100.0}
    assert scores.image_to_text == {1: 0.0, 4: 100.0}
    assert scores.mean_recall == 50.0


def brute_force(images, texts, owner, k):
    """Straight from the definition, with pessimistic ties, one loop per query."""
    images = torch.nn.functional.normalize(images, dim=-1)
    texts = torch.nn.functional.normalize(texts, dim=-1)
    sims = texts @ images.T
    t2i = []
    for t in range(len(texts)):
        positive = sims[t, owner[t]]
        ahead = sum(1 for i in range(len(images)) if i != owner[t] and sims[t, i] >= positive)
        t2i.append(ahead < k)
    i2t = []
    for i in range(len(images)):
        mine = [t for t in range(len(texts)) if owner[t] == i]
        best = max(sims[t, i] for t in mine)
        ahead = sum(1 for t in range(len(texts)) if owner[t] != i and sims[t, i] >= best)
        i2t.append(ahead < k)
    return 100 * sum(t2i) / len(t2i), 100 * sum(i2t) / len(i2t)


@pytest.mark.parametrize("seed,chunk", list(itertools.product(range(3), (1, 7, 1024))))
def test_matches_brute_force_on_random_embeddings_in_any_chunking(seed, chunk):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(23, 8, generator=generator)
    owner = torch.cat([torch.arange(23), torch.randint(0, 23, (30,), generator=generator)])
    texts = images[owner] + 1.2 * torch.randn(len(owner), 8, generator=generator)
    scores = retrieval_scores(images, texts, owner, chunk_size=chunk)
    for k in (1, 5, 10):
        t2i, i2t = brute_force(images, texts, owner.tolist(), k)
        assert scores.text_to_image[k] == pytest.approx(t2i)
        assert scores.image_to_text[k] == pytest.approx(i2t)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="no caption"):
        retrieval_scores(torch.eye(3), torch.eye(3)[:2], [0, 1])
    with pytest.raises(ValueError, match="outside"):
        retrieval_scores(torch.eye(2), torch.eye(2), [0, 5])
