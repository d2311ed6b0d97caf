"""A method is one file: a method defined here, in the test, trains, is evaluated, gets its notebook, and
appears in the report, the cost table and the demo, with no edit anywhere else. Also: every method's
settings are documented, variants are settings, and the committed notebooks are the generated ones."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import nbformat
import pytest
import torch
from torch import nn

from xlcore.config import apply_smoke, help_texts, option, to_dict
from xlcore.methods._base import Conditioning, SingleStageMethod, StageData, build_method, default_config, describe
from xlcore.registry import METHODS
from xlcore.train import TrainConfig


@dataclass(frozen=True)
class EchoConfig:
    """A linear adapter from the multilingual encoder to the UNet, the smallest thing that trains."""

    caption_dropout: float = option(0.1, "Share of captions replaced by the empty prompt.")
    train_items: int = option(256, "English image-text items.", smoke=16)
    train: TrainConfig = option(lambda: TrainConfig(steps=3, batch_size=8, lr=1e-3, warmup_steps=1),
                                "Adapter training (three steps: this method exists for a test).")


class EchoAdapter(SingleStageMethod):
    """Defined in a test module only; registered by the fixture below."""

    config_class = EchoConfig
    stage_name = "adapter"
    uses_unet_gradients = True
    title = "Echo: a linear language adapter (a test's method)"
    summary = "a linear map from the multilingual states to the UNet's conditioning (test only)"
    prose = ("A single linear layer between the frozen multilingual encoder and the frozen UNet, trained with the "
             "denoising loss on English image-text: the smallest method that exercises every part of the harness.")
    diagram = "caption (en) -> multilingual encoder (frozen) -> linear (trained) -> UNet (frozen)"
    order = 50
    published_budgets = {"adapter": {"samples": 1_000, "steps": 125, "reported_gpu_hours": 2.0,
                                     "source": "tests/test_extension.py (made up for the test)"}}

    def build(self) -> None:
        self.adapter = nn.Linear(self.backbone.multilingual.config.hidden_size,
                                 self.backbone.unet.config.cross_attention_dim)

    def modules(self) -> dict[str, nn.Module]:
        return {"adapter": self.adapter}

    def stage_data(self, stage, world) -> StageData:
        return StageData(world.english_image_text(self.config.train_items),
                         {"x0": "diffusion_input", "ml": "multilingual:caption"})

    def loss(self, batch, stage):
        states, _ = self.drop_states(self.config.caption_dropout, batch["ml.states"],
                                     self.empty_prompt_states()["multilingual"])
        loss, _, _ = self.denoise(self.backbone.unet, batch["x0"], self.adapter(states))
        return {"loss": loss}

    def _encode(self, texts, lang):
        states, _ = self.backbone.encode_multilingual(texts)
        return Conditioning(self.adapter(states.float()).to(self.backbone.dtype), None)


@pytest.fixture
def echo_registered():
    METHODS.register("echo_adapter")(EchoAdapter)
    yield "echo_adapter"
    METHODS.unregister("echo_adapter")


def test_a_method_defined_in_one_module_runs_through_every_part(echo_registered, tmp_path):
    from xlcore.cell import Cell, CellRun
    from xlcore.notebooks import method_notebook
    from xlcore.report import cost_table, methods_table
    from xlcore.serving import Catalogue

    name = echo_registered
    info = describe(name)
    assert info.title.startswith("Echo") and info.trains and not info.per_language
    # trains (costed) and is evaluated, rows in the results table
    run = CellRun(Cell("toy", name, "de", 0), smoke=True, output_dir=tmp_path, n_prompts=2)
    run.train()
    measurements, _ = run.evaluate()
    rows = run.write(measurements)
    assert {row.method for row in rows} == {name}
    assert {"compositional_all", "consistency_clip_cos", "fid_scorer256"} <= set(run.summary())
    recorded = run.results.read()
    assert {"cost/training", "cost/measured"} <= set(recorded[recorded["method"] == name]["benchmark"])
    assert (run.dir / "config.json").exists()
    # its notebook, from its class's description
    notebook = method_notebook(name)
    assert info.title in notebook.cells[0].source and info.diagram in notebook.cells[0].source
    nbformat.validate(notebook)
    # the report and the cost table (with the published budget it declares)
    results = tmp_path / "toy" / "results.csv"
    assert f"| {name} |" in methods_table(results)
    assert name in cost_table(results) and "made up for the test" not in methods_table(results)
    from xlcore.evaluate.cost import published_budgets

    assert published_budgets()[f"{name}/adapter"]["reported_gpu_hours"] == 2.0
    # the demo finds the trained run, describes it, and draws with it
    catalogue = Catalogue(output_dir=tmp_path, preset="toy", seed=0, steps=2)
    assert catalogue.entries[name].label == info.summary
    _, drawn = catalogue.draw("Ein roter Kreis", "de", names=[name], steps=2)
    assert drawn[0].ok, drawn[0].message


def test_every_method_setting_has_a_help_text_and_every_preset_resolves():
    for name in METHODS.names():
        texts = help_texts(METHODS.get(name).config_class)  # raises for a field without one
        assert all(len(text) > 10 for text in texts.values()), name
        for preset in ("toy", "sd15"):
            assert isinstance(default_config(name, preset), METHODS.get(name).config_class)


def test_mclip_plus_is_trikd_with_the_mte_stage_on(smoke_backbone):
    """A variant is a named preset of settings: the same class, its own name on the rows it writes."""
    trikd, plus = default_config("trikd"), default_config("mclip_plus")
    assert type(trikd) is type(plus) and not trikd.mte and plus.mte
    changed = {k for k, v in to_dict(plus).items() if to_dict(trikd)[k] != v}
    assert changed == {"mte", "mte_train"}
    method = build_method("mclip_plus", smoke_backbone, apply_smoke(plus))
    assert method.name == "mclip_plus" and method.stages == ("mte", "trikd")
    assert describe("mclip_plus").variant_of == "trikd" and describe("mclip_plus").order > describe("trikd").order
    with pytest.raises(Exception, match="nor one of its variants"):
        type(method)(smoke_backbone, name="altclip")


def test_method_settings_travel_from_an_override_to_the_trainer(tmp_path):
    """`--set pea.train.lr=...` reaches the cell's method config, its config.json, and the stage's
    TrainConfig; a cell rebuilt from that file has the same settings and the same run id."""
    from xlcore.cell import Cell, CellRun
    from xlcore.settings import read_study_config, resolve_study

    study = resolve_study("toy", smoke=True, overrides={"pea.train.lr": 1e-5, "methods.pea.caption_dropout": 0.2})
    assert study.methods["pea"].train.lr == 1e-5 and study.methods["pea"].caption_dropout == 0.2
    assert study.methods["pea"].train.steps == 4  # smoke first, then the override: both hold
    run = CellRun(Cell("toy", "pea", "de", 0), output_dir=tmp_path, study=study)
    assert run.method.train_config("adapter").lr == 1e-5
    again = CellRun(Cell("toy", "pea", "de", 0), output_dir=tmp_path, config_file=str(run.dir / "config.json"))
    assert read_study_config(run.dir / "config.json") == again.study
    assert again.training_id == run.training_id and again.method.config == run.method.config
    default = CellRun(Cell("toy", "pea", "de", 0), output_dir=tmp_path, smoke=True)
    assert default.training_id != run.training_id  # the setting is part of the run's identity
    with pytest.raises(Exception, match="unknown field"):
        resolve_study("toy", overrides={"pea.train.learning_rate": 1e-5})


def test_the_committed_notebooks_are_the_generated_ones(tmp_path):
    from xlcore.notebooks import NOTEBOOKS, write_notebooks

    for path in write_notebooks(tmp_path):
        committed = NOTEBOOKS / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run notebooks/make_method_notebooks.py"
        assert nbformat.read(committed, as_version=4) == nbformat.read(path, as_version=4), \
            f"{committed} is stale: run notebooks/make_method_notebooks.py"


def test_an_unregistered_method_subclass_takes_its_own_defaults(smoke_backbone):
    method = EchoAdapter(smoke_backbone)
    assert method.config == EchoConfig() and torch.is_tensor(next(method.adapter.parameters()))


@pytest.mark.parametrize("name", ["trikd", "mclip_plus", "pea", "altdiffusion", "mulan"])
def test_each_presets_settings_reach_the_trainer(name, tmp_path, monkeypatch):
    """On sd15 a method runs with its paper's optimiser, schedule and batch (where published) and all the
    data; the resolved tree carries them, and the Trainer gets them (smoke-shrunk in steps and batch only)."""
    from xlcore.backbone.sd15 import build_sd15_backbone_from_configs
    from xlcore.config import WorldConfig
    from xlcore.experiment import train_method
    from xlcore.settings import method_config, resolve_study
    from xlcore.train import Trainer
    from xlcore.world import World

    sd15 = default_config(name, "sd15")
    assert method_config(resolve_study("sd15"), name) == sd15
    assert all(getattr(sd15, f) == 0 for f in to_dict(sd15) if "items" in f)  # all the data file gives
    assert sd15 != default_config(name, "toy")
    seen = {}
    original = Trainer.__init__

    def capture(self, task, config, run_dir, **kwargs):
        seen[task.stage] = config
        original(self, task, dataclasses.replace(config, steps=1), run_dir, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", capture)
    backbone = build_sd15_backbone_from_configs(small=True, device="cpu")
    config = apply_smoke(sd15)
    method = build_method(name, backbone, config, language="de" if METHODS.get(name).per_language else None)
    train_method(method, World(apply_smoke(WorldConfig(image_size=64))), tmp_path)
    for stage, trained in seen.items():
        wanted = method.train_config(stage)
        for field in ("optimizer", "lr", "schedule", "betas", "weight_decay", "max_grad_norm"):
            assert getattr(trained, field) == getattr(wanted, field), (stage, field)
        assert trained.mixed_precision in (wanted.mixed_precision, "bf16", "fp16")
    if name in ("trikd", "mclip_plus"):
        assert seen["trikd"].optimizer == "lamb" and seen["trikd"].lr == 1e-2 and seen["trikd"].max_grad_norm == 2.0
    if name == "mclip_plus":
        assert seen["mte"].lr == 1e-4 and seen["mte"].betas == (0.9, 0.98)  # upstream's, not the toy's 3e-4
    if name == "pea":
        assert seen["adapter"].lr == 1e-5 and seen["adapter"].schedule == "linear" and sd15.train.batch_size == 320
