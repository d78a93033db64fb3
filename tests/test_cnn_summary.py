"""The lecture-style table: AlexNet's rows, any nn.Module, GAN networks, errors."""

import pytest
import torch
from torch import nn

from facegan.cnn import create_model, summarize, summarize_by_name
from facegan.cnn.summary import volume
from facegan.cnn.zoo import build_model, gan_models
from facegan.errors import FaceganError

# The lecture's AlexNet table (CONV1 ... FC8), as printed on its slide.
LECTURE_ALEXNET = [
    "[227x227x3] INPUT",
    "[55x55x96] CONV1: 96 11x11 filters at stride 4, pad 0",
    "[27x27x96] MAX POOL1: 3x3 filters at stride 2",
    "[27x27x96] NORM1: Normalization layer",
    "[27x27x256] CONV2: 256 5x5 filters at stride 1, pad 2",
    "[13x13x256] MAX POOL2: 3x3 filters at stride 2",
    "[13x13x256] NORM2: Normalization layer",
    "[13x13x384] CONV3: 384 3x3 filters at stride 1, pad 1",
    "[13x13x384] CONV4: 384 3x3 filters at stride 1, pad 1",
    "[13x13x256] CONV5: 256 3x3 filters at stride 1, pad 1",
    "[6x6x256] MAX POOL3: 3x3 filters at stride 2",
    "[4096] FC6: 4096 neurons",
    "[4096] FC7: 4096 neurons",
    "[1000] FC8: 1000 neurons",
]


def test_alexnet_table_is_the_lecture_table():
    summary = summarize_by_name("alexnet")  # on the meta device: nothing allocated
    shown = [r for r in summary.rows if r.shown]
    assert [r.text for r in shown] == LECTURE_ALEXNET
    assert summary.find("CONV1").params == 96 * (11 * 11 * 3 + 1)
    assert summary.find("FC6").params == (6 * 6 * 256 + 1) * 4096
    assert sum(r.params for r in summary.rows) == summary.total_params
    table = summary.format()
    assert table.index("CONV1: 96 11x11") < table.index("FC8: 1000 neurons")
    assert f"total parameters: {summary.total_params:,}" in table


def test_real_and_meta_models_give_the_same_table_and_modes_are_restored():
    torch.manual_seed(0)
    model = create_model("cnn1d", width=4).train()
    model[1].eval()  # a mixed-mode model must come back exactly as it was
    real = summarize(model, (1, 32))
    assert model.training and not model[1].training and model[0].training
    with torch.device("meta"):
        meta = summarize(create_model("cnn1d", width=4), (1, 32))
    assert [r.text for r in real.rows] == [r.text for r in meta.rows]
    assert real.total_params == meta.total_params == sum(p.numel() for p in model.parameters())


class TwoTowers(nn.Module):
    """Any nn.Module: functional ops, a module called twice, a parameter outside any leaf."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Conv2d(3, 3, 3, padding=1)
        self.down = nn.Conv2d(3, 8, 4, stride=2, padding=1, bias=False)
        self.norm = nn.GroupNorm(2, 8)
        self.scale = nn.Parameter(torch.ones(1))
        self.unused = nn.Linear(5, 5)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.relu(self.shared(self.shared(x)))
        x = self.norm(self.down(x)) * self.scale
        return self.head(x.mean((2, 3)))


def test_any_module_repeated_calls_and_unused_parts():
    model = TwoTowers()
    s = summarize(model, (3, 16, 16))
    labels = [r.label for r in s.rows]
    assert labels == ["INPUT", "CONV1", "CONV2", "CONV3", "NORM1", "FC4", "TWOTOWERS1"]
    assert s.find("CONV1").params == 84 and s.find("CONV2").params == 0  # counted once
    assert s.find("CONV3").text == "[8x8x8] CONV3: 8 4x4 filters at stride 2, pad 1"
    assert s.find("NORM1").detail == "GroupNorm, 2 groups"
    assert s.find("TWOTOWERS1").params == 1  # the loose parameter
    assert s.unused == {"unused": 30}
    assert sum(r.params for r in s.rows) + sum(s.unused.values()) == s.total_params
    assert "not run on this input" in s.format() and "unused 30" in s.format()


def test_hidden_elementwise_layers_and_all_layers():
    s = summarize(create_model("lenet5"), (1, 32, 32))
    short, full = s.format(), s.format(all_layers=True)
    assert "TANH" not in short and "TANH" in full and "FLATTEN" in full
    assert "[28x28x6] CONV1: 6 5x5 filters at stride 1, pad 0" in short
    assert "[14x14x6] AVG POOL1: 2x2 filters at stride 2" in short
    assert s.output_shape == (10,)


def test_googlenet_aux_heads_are_in_the_total_but_not_run_in_eval():
    s = summarize_by_name("googlenet", (3, 64, 64))
    assert set(s.unused) == {"aux1", "aux2"}
    assert s.rows[-1].text == "[1000] FC58: 1000 neurons"


def test_volumes_are_written_channels_last():
    assert volume((96, 55, 55)) == "55x55x96"
    assert volume((32, 16, 112, 112)) == "16x112x112x32"
    assert volume((64, 128)) == "128x64"
    assert volume((4096,)) == "4096"


@pytest.mark.parametrize("name", gan_models() or ["(no GAN registry)"])
def test_gan_networks_have_tables(name):
    assert gan_models(), "facegan.models.registry lists no networks"
    s = summarize_by_name(name)
    with torch.device("meta"):
        model, shape = build_model(name)
        out = model.eval()(torch.zeros(1, *shape))
    assert s.input_shape == shape
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.rows[-1].output_shape == tuple(out.shape[1:]) or out.numel() == 1


def test_inputs_the_model_refuses_are_errors_naming_model_and_shape():
    with pytest.raises(FaceganError, match="alexnet does not accept an input of 3x224x224"):
        summarize_by_name("alexnet", (3, 224, 224))
    with pytest.raises(FaceganError, match="unknown model"):
        summarize_by_name("alexnet9")
    with pytest.raises(FaceganError, match="positive"):
        summarize(nn.Conv2d(1, 1, 1), (1, 0, 4))


class NeedsValues(nn.Module):
    """A forward that reads tensor values: impossible on the meta device."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        y = self.conv(x)
        return y * float(y.abs().max().item() > -1)


def test_models_that_cannot_run_on_meta_are_summarized_on_the_cpu():
    from facegan.cnn import zoo

    zoo.register("needs-values", input_shape=(1, 8, 8), small_input=(1, 8, 8), description="test only")(NeedsValues)
    try:
        s = summarize_by_name("needs-values")
    finally:
        zoo.MODELS.remove("needs-values")
    assert s.find("CONV1").text == "[6x6x2] CONV1: 2 3x3 filters at stride 1, pad 0"
    assert s.total_params == 2 * 9 + 2
