"""Student creation: layer map, copied weights, errors."""

import pytest
import torch
from conftest import tiny_bert, tiny_xlmr

from hf_eliquare import ConfigurationError, create_student
from hf_eliquare.student import default_teacher_layers, freeze_position_embeddings


def test_default_map_is_distilbert_2n_minus_1():
    # student layer n (1-based) <- teacher layer 2n-1 (1-based) == 0-based 2i
    assert default_teacher_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert default_teacher_layers(4, 2) == [0, 2]
    assert default_teacher_layers(12, 4) == [0, 3, 6, 9]
    assert default_teacher_layers(12, 12) == list(range(12))


def _assert_same(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("make", [tiny_bert, tiny_xlmr], ids=["bert", "xlm-roberta"])
def test_layers_embeddings_and_head_are_copied(make):
    teacher = make(vocab_size=60, layers=6)
    student = create_student(teacher, num_layers=3)
    assert type(student) is type(teacher)
    assert student.config.num_hidden_layers == 3
    assert student.config.eliquare["teacher_layers"] == [0, 2, 4]
    t_layers, s_layers = teacher.base_model.encoder.layer, student.base_model.encoder.layer
    for i in range(3):
        _assert_same(s_layers[i], t_layers[2 * i])
    _assert_same(student.base_model.embeddings, teacher.base_model.embeddings)
    head = "cls" if teacher.config.model_type == "bert" else "lm_head"
    _assert_same(getattr(student, head), getattr(teacher, head))
    # tied decoder stays tied to the student's own embeddings
    assert student.get_output_embeddings().weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()
    # the teacher is untouched and the student is independent
    with torch.no_grad():
        student.base_model.encoder.layer[0].output.dense.weight.add_(1.0)
    assert not torch.equal(
        student.base_model.encoder.layer[0].output.dense.weight,
        teacher.base_model.encoder.layer[0].output.dense.weight,
    )


def test_explicit_layers():
    teacher = tiny_bert(vocab_size=40, layers=6)
    student = create_student(teacher, layers=[1, 4, 5])
    assert student.config.num_hidden_layers == 3
    for s_idx, t_idx in enumerate([1, 4, 5]):
        _assert_same(student.bert.encoder.layer[s_idx], teacher.bert.encoder.layer[t_idx])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_layers": 7}, "between 1 and 6"),
        ({"num_layers": 0}, "between 1 and 6"),
        ({"layers": [0, 0, 2]}, "repeats"),
        ({"layers": [0, 6]}, "out of range"),
        ({"layers": [-1, 2]}, "out of range"),
        ({"layers": [3, 1]}, "increasing"),
        ({"layers": []}, "empty"),
    ],
)
def test_bad_layer_requests(kwargs, message):
    teacher = tiny_bert(vocab_size=40, layers=6)
    with pytest.raises(ConfigurationError, match=message):
        create_student(teacher, **kwargs)


def test_unsupported_teachers():
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    with pytest.raises(ConfigurationError, match="no masked-language-modelling head"):
        create_student(
            BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2))
        )
    with pytest.raises(ConfigurationError, match="model_type='gpt2'"):
        create_student(GPT2LMHeadModel(GPT2Config(vocab_size=30, n_embd=16, n_layer=2, n_head=2)))


def test_freeze_position_embeddings():
    student = create_student(tiny_xlmr(vocab_size=40, layers=4), num_layers=2)
    assert freeze_position_embeddings(student)
    assert not student.roberta.embeddings.position_embeddings.weight.requires_grad
    assert student.roberta.embeddings.word_embeddings.weight.requires_grad


def test_student_saves_and_reloads_with_layer_map(tmp_path):
    from transformers import AutoModelForMaskedLM

    student = create_student(tiny_bert(vocab_size=40, layers=4), num_layers=2)
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert reloaded.config.eliquare["teacher_layers"] == [0, 2]
    _assert_same(reloaded, student)
