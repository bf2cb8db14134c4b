"""Fine-tuning: layer-wise learning rates, the optimizer, initial weights, prediction and the CLI end to end."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import SPECIAL_IDS, make_pretrainer, run_script, script_errors
from electra_tf import checkpoint_interop, electric, finetuning, optimization, task_data, tasks, training
from electra_tf.config import ElectraConfig

TINY = dict(max_seq_length=32, num_hidden_layers=3)


def _classifier(config, num_outputs=3, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = finetuning.ElectraClassifier(config, num_outputs, "toy")
        model.build_variables()
    return model


def test_layerwise_multipliers_follow_depth_and_the_authors_off_by_one():
    config = ElectraConfig.from_size("tiny", dict(TINY, layerwise_lr_decay=0.8))
    model = _classifier(config)
    names = model.variable_names()
    for off_by_one, top in ((False, 4), (True, 5)):
        multipliers = optimization.layerwise_lr_multipliers(names, 3, 0.8, authors_off_by_one=off_by_one)
        assert set(multipliers) == set(names) and len(names) == len(model.trainable_variables)
        for name, m in multipliers.items():
            depth = (0 if "/embeddings" in name else top if name.startswith("task_specific/")
                     else int(name.split("/layer_")[1].split("/")[0]) + 1)
            assert m == pytest.approx(0.8 ** (top - depth)), name
        head = multipliers["task_specific/toy/dense/kernel"]
        top_layer = multipliers["electra/encoder/layer_2/output/dense/kernel"]
        assert head == 1.0 and top_layer == pytest.approx(0.8 ** 2 if off_by_one else 0.8)
        assert multipliers["electra/embeddings/word_embeddings"] == pytest.approx(0.8 ** top)
    with pytest.raises(ValueError, match="no depth for 'generator/encoder"):
        optimization.layerwise_lr_multipliers({"generator/encoder/x": None}, 3, 0.8)


def test_optimizer_equals_keras_adamw_with_each_variables_scaled_rate():
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(2)]
    grads = [tf.constant(rng.normal(size=(4, 3)).astype(np.float32)) for _ in range(2)]
    ours = [keras.Variable(v, name=f"kernel_{i}") for i, v in enumerate(init)]
    optimizer = optimization.AdamWeightDecay(0.01, [(ours[1], 0.25)], learning_rate=1e-2, epsilon=1e-6)
    references = []
    for value, rate in zip(init, (1e-2, 0.25e-2)):
        variable = keras.Variable(value, name="kernel")
        references.append((variable, keras.optimizers.AdamW(learning_rate=rate, weight_decay=0.01, epsilon=1e-6)))
    for _ in range(3):
        optimizer.apply(grads, ours)
        for (variable, reference), grad in zip(references, grads):
            reference.apply([grad], [variable])
    for mine, (variable, _) in zip(ours, references):
        np.testing.assert_allclose(mine.numpy(), variable.numpy(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(ours[0].numpy(), init[0]) and optimizer.lr_multiplier(ours[1]) == 0.25


def _assert_encoder_loads(pretrainer, config, model_dir, vocab_file):
    """Writes `pretrainer` as a model dir; a classifier loads exactly its discriminator's encoder from it."""
    checkpoint_interop.write_native(model_dir, config, vocab_file, checkpoint_interop.variable_names(pretrainer))
    model = _classifier(config)
    assert finetuning.load_pretrained(model, model_dir) == "native"
    source = checkpoint_interop.model_arrays(checkpoint_interop.encoder_names(pretrainer.discriminator, "electra"))
    loaded = checkpoint_interop.model_arrays(checkpoint_interop.encoder_names(model.encoder, "electra"))
    assert source.keys() == loaded.keys() and all(np.array_equal(source[n], loaded[n]) for n in source)


def test_encoder_loads_from_a_pretraining_model_dir_and_bad_shapes_are_errors(tmp_path, vocab_file):
    config = ElectraConfig.from_size("tiny", TINY)
    model_dir = str(tmp_path / "pretrained")
    _assert_encoder_loads(make_pretrainer(config.replace(seed=7)), config, model_dir, vocab_file)

    wider = _classifier(ElectraConfig.from_size("tiny", dict(TINY, intermediate_size=256)))
    with pytest.raises(ValueError, match=r"does not fit --model_size/--hparams: .*intermediate/dense/kernel: "
                                         r"checkpoint shape \(128, 512\) does not fit the model's \(128, 256\)"):
        finetuning.load_pretrained(wider, model_dir)
    deeper = _classifier(ElectraConfig.from_size("tiny", dict(TINY, num_hidden_layers=4)))
    with pytest.raises(ValueError, match=r"missing \['electra/encoder/layer_3/"):
        finetuning.load_pretrained(deeper, model_dir)


def test_predictions_are_in_order_and_equal_on_two_replicas(mirrored_strategy, tmp_path):
    config = ElectraConfig.from_size("tiny", TINY)
    rng = np.random.default_rng(1)
    n = 37  # Not a multiple of the batch: the last batch is padded, and the padding dropped.
    ids = rng.integers(1000, 5000, (n, 32)).astype(np.int32)
    features = {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids),
                "label_ids": np.zeros(n, np.int32)}
    outputs = []
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy):
        model = _classifier(config, strategy=strategy)
        trainer = training.Trainer(model, strategy, str(tmp_path / str(len(outputs))))
        dataset, real = finetuning.eval_dataset(features, 8)
        outputs.append(trainer.predict(dataset)[:real])
    one_by_one = _classifier(config)({k: v for k, v in features.items() if k != "label_ids"}).numpy()
    assert outputs[0].shape == (n, 3)
    np.testing.assert_allclose(outputs[0], one_by_one, atol=1e-5)
    np.testing.assert_allclose(outputs[1], one_by_one, atol=1e-5)


def _write_mrpc(glue_dir, questions):
    """An MRPC-format task built from real questions: a pair is a paraphrase when both halves are the same."""
    os.makedirs(os.path.join(glue_dir, "MRPC"), exist_ok=True)
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    rows = []
    for i, (a, b) in enumerate(zip(questions[::2], questions[1::2])):
        rows.append(f"{i % 2}\t{2 * i}\t{2 * i + 1}\t{a}\t{a if i % 2 else b}\n")
    for split, part in (("train", rows[:96]), ("dev", rows[96:128])):
        with open(os.path.join(glue_dir, "MRPC", f"{split}.tsv"), "w") as f:
            f.write(header + "".join(part))
    with open(os.path.join(glue_dir, "MRPC", "test.tsv"), "w") as f:
        f.write("index\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + "".join(
            f"{i}\t{i}\t{i}\t{r.split(chr(9))[3]}\t{r.split(chr(9))[4]}" for i, r in enumerate(rows[128:138])))


def test_run_finetuning_glue_trials_predictions_resume_and_init(tmp_path, vocab_file):
    trec = task_data.prepare_trec(str(tmp_path / "trec"))
    questions = [line.split("\t", 1)[1].rstrip("\n") for line in open(trec["train"], encoding="utf-8")][:300]
    glue_dir = str(tmp_path / "glue")
    _write_mrpc(glue_dir, questions)
    # Shapes other than --model_size's (a learned vocab, a narrower FFN): the init dir's config.json says them.
    config = ElectraConfig.from_size("tiny", dict(max_seq_length=32, intermediate_size=256))
    init_dir = str(tmp_path / "pretrained")
    checkpoint_interop.write_native(init_dir, config, vocab_file,
                                    checkpoint_interop.variable_names(make_pretrainer(config)))
    model_dir = str(tmp_path / "mrpc")
    args = ["--task=MRPC", f"--data_dir={glue_dir}", f"--init_checkpoint={init_dir}", f"--model_dir={model_dir}",
            "--max_seq_length=32", "--num_train_epochs=1", "--steps_per_loop=3", "--num_trials=2", "--predict"]
    done = run_script("run_finetuning.py", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "initialised the encoder from" in done.stderr
    assert "its config.json sets {'intermediate_size': 256}" in done.stderr
    results = json.load(open(os.path.join(model_dir, "results.json")))
    steps = 2 * 96 // 32  # MRPC training pairs are doubled (swapped order).
    assert [t["trial"] for t in results["trials"]] == [1, 2] and [t["steps"] for t in results["trials"]] == [steps] * 2
    assert results["trials"][0]["seed"] != results["trials"][1]["seed"]
    for name in ("accuracy", "f1"):
        values = [t[name] for t in results["trials"]]
        assert results[name] == results["median"][name] == pytest.approx(np.median(values))
        assert all(0.0 <= v <= 1.0 for v in values)
    lines = open(os.path.join(model_dir, "trial_1", "MRPC.tsv")).read().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 11
    assert all(line.split("\t")[0] == str(i) and line.split("\t")[1] in ("0", "1")
               for i, line in enumerate(lines[1:]))
    # The trial dir is an electra_tf model dir holding the fine-tuned weights under the authors' names.
    arrays = checkpoint_interop.read_checkpoint(os.path.join(model_dir, "trial_1"), "native")
    assert arrays["task_specific/mrpc/dense/kernel"].shape == (128, 2)

    again = run_script("run_finetuning.py", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count(f"already trained for {steps} steps") == 2
    assert json.load(open(os.path.join(model_dir, "results.json")))["trials"] == results["trials"]


def test_run_finetuning_learns_trec_question_classes(tmp_path):
    """The generic task on real labelled text: from random init, one epoch beats the majority class clearly."""
    trec = task_data.prepare_trec(str(tmp_path / "trec"))
    model_dir = str(tmp_path / "trec_run")
    done = run_script("run_finetuning.py", "--task=text_classification", f"--train_file={trec['train']}",
                      f"--dev_file={trec['dev']}", "--text_a_column=1", "--label_column=0",
                      f"--model_dir={model_dir}", "--max_seq_length=32", "--num_train_epochs=1",
                      "--steps_per_loop=50")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.load(open(os.path.join(model_dir, "results.json")))
    labels = [line.split("\t")[0] for line in open(trec["dev"], encoding="utf-8")]
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert result["accuracy"] > majority + 0.2, (result, majority)

    # The trained trial exports for TF Serving and, served from raw text, scores what fine-tuning reported.
    trial_dir = os.path.join(model_dir, "trial_1")
    assert sorted(json.load(open(os.path.join(trial_dir, tasks.TASK_FILE)))["labels"]) == sorted(set(labels))
    exported = run_script("export_model.py", f"--model_dir={trial_dir}", f"--export_dir={tmp_path / 'serving'}",
                          "--kind=classifier", "--model_name=trec", "--sample_text=Who wrote Hamlet?")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert json.loads(exported.stdout.split("response: ")[1])["predictions"][0]["label"] in labels
    served = tf.saved_model.load(str(tmp_path / "serving" / "trec" / "1")).signatures["serving_default"]
    questions = [line.rstrip("\n").split("\t")[1] for line in open(trec["dev"], encoding="utf-8")]
    predicted = [label.decode() for label in served(text=tf.constant(questions))["label"].numpy()]
    assert np.mean(np.array(predicted) == np.array(labels)) == pytest.approx(result["accuracy"], abs=1 / len(labels))


def test_run_finetuning_sts_regression_reports_correlations(tmp_path):
    glue_dir = tmp_path / "glue"
    (glue_dir / "STS-B").mkdir(parents=True)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    words = "a man is playing the guitar while a woman sings on a stage near the old river".split()
    rows = [(" ".join(words[i % 7:i % 7 + 6]), " ".join(words[i % 5:i % 5 + 6]), f"{(i * 0.37) % 5:.3f}")
            for i in range(40)]
    for split, part in (("train", rows[:32]), ("dev", rows[32:])):
        (glue_dir / "STS-B" / f"{split}.tsv").write_text(header + "\tscore\n" + "".join(
            f"{i}\tmain\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{score}\n" for i, (a, b, score) in enumerate(part)))
    (glue_dir / "STS-B" / "test.tsv").write_text(header + "\n" + "".join(
        f"{i}\tmain\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\n" for i, (a, b, _) in enumerate(rows[:5])))
    model_dir = str(tmp_path / "sts")
    done = run_script("run_finetuning.py", "--task=sts", f"--data_dir={glue_dir}", f"--model_dir={model_dir}",
                      "--max_seq_length=16", "--num_train_epochs=1", "--train_batch_size=16", "--predict")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.load(open(os.path.join(model_dir, "results.json")))
    assert result["trials"][0]["steps"] == 4  # 10 epochs (configs/finetuning/tasks.json) is overridden by the flag.
    assert -1.0 <= result["pearson"] <= 1.0 and -1.0 <= result["spearman"] <= 1.0
    predictions = open(os.path.join(model_dir, "trial_1", "STS-B.tsv")).read().splitlines()[1:]
    assert len(predictions) == 5 and all(float(line.split("\t")[1]) == float(line.split("\t")[1]) for line in predictions)


def test_sts_and_rte_train_ten_epochs_by_default():
    assert ElectraConfig.from_size("small", task="sts").num_train_epochs == 10
    assert ElectraConfig.from_size("small", task="rte").num_train_epochs == 10
    small = ElectraConfig.from_size("small", task="mrpc")
    assert (small.num_train_epochs, small.learning_rate, small.train_batch_size, small.layerwise_lr_decay) == (
        3, 3e-4, 32, 0.8)
    assert ElectraConfig.from_size("large", task="mrpc").layerwise_lr_decay == 0.9
    assert ElectraConfig.from_size("small", {"learning_rate": 1e-5}, task="mrpc").learning_rate == 1e-5
    assert ElectraConfig.from_size("small").learning_rate == 5e-4  # Pre-training keeps its own.


def test_tfds_reader_yields_examples_with_the_tasks_labels():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):  # Random records with the real glue/* feature specs.
        stsb = tasks.get_task("stsb").read_tfds("train")
        mnli = tasks.get_task("mnli").read_tfds("dev_mismatched")
        test = tasks.get_task("qnli").read_tfds("test")
    assert len(stsb) == 12 and all(isinstance(e.label, float) for e in stsb)  # Doubled, unordered.
    assert {e.label for e in mnli} <= {"contradiction", "entailment", "neutral"} and len(mnli) == 6
    assert all(e.label is None and e.text_b is not None for e in test)


def test_run_finetuning_bad_flags_give_clear_errors(tmp_path):
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes("pos\tgood\nneg\tna\u00efve caf\u00e9\n".encode("latin-1"))
    cases = [
        ([], "--task is required"),
        (["--task=squad3"], "--task='squad3': choose one of"),
        (["--task=squad"], "--task=squad needs --data_dir (with its train and dev files) or --train_file and "
                           "--dev_file"),
        (["--task=rte"], "--task=rte needs --data_dir"),
        (["--task=rte", "--data_dir=/nonexistent", f"--model_dir={tmp_path / 'never_made'}"],
         "task rte: no train file; tried /nonexistent/RTE/train.tsv"),
        (["--task=text_classification", "--train_file=/nonexistent.tsv"],
         "--train_file='/nonexistent.tsv' does not exist"),
        (["--task=rte", "--data_dir=.", "--num_trials=0"], "--num_trials must be positive"),
        (["--task=rte", "--data_dir=.", "--gradient_accumulation_steps=2"],
         "--gradient_accumulation_steps is not supported"),
        # Read first for the model's shapes, so a wrong path stops the run before any data is read.
        (["--task=rte", "--data_dir=.", "--init_checkpoint=/nonexistent/model"],
         "/nonexistent/model: neither an electra_tf model dir, a Hugging Face model dir, a keras-hub preset nor a TF1 "
         "checkpoint"),
        (["--task=text_classification", f"--train_file={latin1}"],
         f"{latin1}:2: bytes that are not UTF-8 (b'\\xef' at byte 15)"),
    ]
    errors = script_errors("run_finetuning.py", [args for args, _ in cases])
    for (args, message), error in zip(cases, errors):
        assert message in error, (args, error)
    assert not (tmp_path / "never_made").exists()  # A wrong input path leaves no run directory behind.


def test_run_finetuning_with_too_few_examples_for_a_batch_says_so(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("a\tfirst text\nb\tsecond text\na\tthird text\n")
    done = run_script("run_finetuning.py", "--task=text_classification", f"--train_file={train}",
                      "--text_a_column=1", "--label_column=0", f"--model_dir={tmp_path / 'run'}")
    assert done.returncode != 0, done.stderr[-2000:]
    assert "text_classification: 3 training examples x 3.0 epochs make no full batch of 32" in done.stderr


def test_two_fine_tuning_steps_equal_on_one_device_two_replicas_and_xla(mirrored_strategy, tmp_path):
    config = ElectraConfig.from_size("tiny", dict(TINY, dropout_prob=0.0))
    rng = np.random.default_rng(2)
    ids = rng.integers(1000, 5000, (16, 32)).astype(np.int32)
    features = {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids),
                "label_ids": rng.integers(0, 3, 16).astype(np.int32)}
    heads = []
    for i, (strategy, jit) in enumerate(((tf.distribute.get_strategy(), False), (mirrored_strategy, False),
                                         (tf.distribute.get_strategy(), True))):
        model = _classifier(config, strategy=strategy)
        with strategy.scope():
            model.compile(optimizer=optimization.create_optimizer(
                config, total_steps=10, warmup_steps=0, lr_multipliers=finetuning.layerwise_multipliers(model)))
            model.optimizer.build(model.trainable_variables)
        trainer = training.Trainer(model, strategy, str(tmp_path / str(i)), jit_compile=jit, guard=model.guard)
        trainer.train(lambda context, start_step: finetuning.train_dataset(
            features, 8, seed=0, input_context=context, start_step=start_step),
            num_steps=2, steps_per_loop=2, checkpoint_every=2, tokens_per_step=8 * 32)
        heads.append(model.head.kernel.numpy())
    assert not np.allclose(heads[0], _classifier(config).head.kernel.numpy())  # It trained.
    np.testing.assert_allclose(heads[1], heads[0], atol=2e-5)
    np.testing.assert_allclose(heads[2], heads[0], atol=2e-5)


@pytest.mark.parametrize("variant", [{"objective": "replace_mlm"}, {"objective": "all_tokens_mlm"},
                                     {"generator_training": "adversarial"}, {"weight_sharing": "none"},
                                     {"objective": "electric", "generator_kind": "two_tower"}])
def test_every_pretraining_variant_gives_its_encoder_to_fine_tuning(variant, tmp_path, vocab_file):
    config = ElectraConfig.from_size("tiny", dict(TINY, **variant))
    if config.objective == "electric":
        keras.utils.set_random_seed(7)
        pretrainer = electric.ElectricPretrainer(config, SPECIAL_IDS)
        pretrainer.build_variables()
    else:
        pretrainer = make_pretrainer(config.replace(seed=7))
    _assert_encoder_loads(pretrainer, config, str(tmp_path / "pretrained"), vocab_file)
