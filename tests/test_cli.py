"""The ``fastbp`` command line, end to end."""

import csv
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastbp
from fastbp.cli import main

REPO = Path(fastbp.__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def run_fastbp(*args, cwd):
    """``python -m fastbp ARGS`` in a fresh process, with this checkout's fastbp."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "fastbp", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def cli(capsys, *args):
    """Run ``fastbp ARGS`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def summary_value(out, label):
    """The text of the summary row ``label``."""
    match = re.search(rf"^{re.escape(label)}\s+(.*)$", out, re.MULTILINE)
    assert match, f"no {label!r} row in:\n{out}"
    return match.group(1)


def digits_X():
    return load_digits().data / 16.0


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def blobs(n=150, seed=0):
    """Three well-separated clusters in 2-D, as features and class index."""
    rng = np.random.default_rng(seed)
    centers = np.array([[-2.0, -2.0], [2.0, -2.0], [0.0, 2.0]])
    k = rng.integers(0, 3, size=n)
    return centers[k] + 0.3 * rng.standard_normal((n, 2)), k


# --- end to end, in subprocesses --------------------------------------------------

def test_train_save_info_predict_plot(tmp_path):
    pytest.importorskip("matplotlib")
    done = run_fastbp("train", "--epochs", 3, "--hidden", 32, "--optimizer", "sgd",
                      "--save", "m.npz", "--plot", "train.png", "--progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"\b3/3\b", done.stderr)  # a bar (tqdm) or lines (without it)
    assert float(summary_value(done.stdout, "held-out").split()[1]) > 0.8
    assert summary_value(done.stdout, "model") == "saved to m.npz"
    assert (tmp_path / "train.png").read_bytes().startswith(PNG)

    info = run_fastbp("info", "m.npz", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert summary_value(info.stdout, "network").startswith("64-32-10 relu")
    assert summary_value(info.stdout, "training").startswith("3 epochs of sgd")
    assert summary_value(info.stdout, "held-out") == summary_value(done.stdout, "held-out")

    predict = run_fastbp("predict", "m.npz", "digits", "--out", "p.csv", cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["prediction"]
    expected = fastbp.load(tmp_path / "m.npz").predict(digits_X())
    assert [int(row[0]) for row in rows[1:]] == expected.tolist()

    plot = run_fastbp("plot", "m.npz", "again.png", cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "again.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize("args, message", [
    (["train", "missing.csv", "--target", "y"], "missing.csv: No such file"),
    (["train", "--activation", "swish"], "Unknown --activation 'swish'"),
    (["train", "--epochs", "many"], "invalid int value: 'many'"),
])
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    done = run_fastbp(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("fastbp") and message in done.stderr
    assert done.stdout == ""


# --- in this process --------------------------------------------------------------

def test_default_run_reaches_97_percent(capsys):
    code, out, err = cli(capsys, "train")
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    accuracy = summary_value(out, "held-out")
    assert re.fullmatch(r"accuracy (\S+) on 360 samples", accuracy)
    assert float(accuracy.split()[1]) >= 0.97
    assert summary_value(out, "network").startswith("64-256-10 relu, "
                                                    "softmax_cross_entropy, float32")
    assert re.match(r"[\d.]+ s, [\d,]+ samples/s", summary_value(out, "time"))
    assert re.match(r"[\d.]+ s before training", summary_value(out, "kernels"))
    assert "not saved" in summary_value(out, "model")


def test_training_is_exactly_fit(capsys, tmp_path):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    code, out, err = cli(capsys, "train", tmp_path / "d.npz", "--hidden", 24,
                         "--activation", "tanh", "--optimizer", "adam", "--lr", 0.003,
                         "--alpha", 0.01, "--clip-norm", 5, "--batch-size", 20,
                         "--epochs", 3, "--seed", 5, "--save", tmp_path / "m.npz")
    assert code == 0, err
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2,
                                                      random_state=5, stratify=y)
    expected = fastbp.MLP([64, 24, 10], activation="tanh", random_state=5)
    expected.fit(X_train, y_train, epochs=3, optimizer="adam", lr=0.003, alpha=0.01,
                 clip_norm=5.0, batch_size=20, validation_data=(X_val, y_val))
    net = fastbp.load(tmp_path / "m.npz")
    assert net.params_.tobytes() == expected.params_.tobytes()
    for key in ("loss", "val_loss", "val_score", "grad_norm"):
        assert net.history_[key] == expected.history_[key]


def test_ctrl_c_saves_the_finished_epochs_and_exits_130(capsys, monkeypatch, tmp_path):
    epoch = fastbp.MLP._epoch
    weights = {}    # per network: the CLI first compiles on a throwaway one
    trained = []

    def interrupted_during_third_record(self, *args, **kwargs):
        weights.setdefault(id(self), []).append(self.params_.copy())
        loss = epoch(self, *args, **kwargs)
        if len(self.history_["loss"]) == 3:
            trained.append(id(self))
            self.history_["loss"].append(0.0)  # a half-written record
            raise KeyboardInterrupt
        return loss

    monkeypatch.setattr(fastbp.MLP, "_epoch", interrupted_during_third_record)
    code, out, err = cli(capsys, "train", "--epochs", 5, "--hidden", 8, "--progress",
                         "--save", tmp_path / "m.npz")
    assert code == 130
    assert err.endswith("fastbp: interrupted after 2 of 5 epoch(s); keeping the weights "
                        "of the last completed epoch\n")
    assert "warning" not in err
    assert summary_value(out, "training").startswith("2 epochs (interrupted, of 5)")
    net, info = fastbp.load(tmp_path / "m.npz", return_info=True)
    assert info["training"]["interrupted"] and info["training"]["epochs"] == 2
    assert all(len(values) == 2 for values in net.history_.values())
    assert net.params_.tobytes() == weights[trained[0]][2].tobytes()


def test_other_training_warnings_are_shown(capsys, monkeypatch):
    def warn(self):
        warnings.warn("Exploding gradients: test.", fastbp.GradientWarning)

    monkeypatch.setattr(fastbp.MLP, "_warn_gradients", warn)
    code, out, err = cli(capsys, "train", "--epochs", 1, "--hidden", 8)
    assert code == 0
    assert err == "fastbp: warning: Exploding gradients: test.\n"


def test_text_labels_are_decoded(capsys, tmp_path):
    X, k = blobs()
    names = np.array(["bird", "cat", "dog"])[k]
    write_csv(tmp_path / "pets.csv", ["x1", "label", "x2"],
              [[a, name, b] for (a, b), name in zip(X, names)])
    code, out, err = cli(capsys, "train", tmp_path / "pets.csv", "--target", "label",
                         "--epochs", 30, "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert summary_value(out, "classes") == "bird, cat, dog"
    assert float(summary_value(out, "held-out").split()[1]) >= 0.9
    # Columns are found by name: a file with a new order and no label works.
    write_csv(tmp_path / "new.csv", ["x2", "x1"], [[b, a] for a, b in X[:20]])
    code, out, err = cli(capsys, "predict", tmp_path / "m.npz", tmp_path / "new.csv")
    assert code == 0, err
    predicted = out.splitlines()
    assert predicted[0] == "prediction"
    assert np.mean(np.array(predicted[1:]) == names[:20]) >= 0.9


def test_arbitrary_integer_labels_from_npz(capsys, tmp_path):
    X, k = blobs(seed=1)
    labels = np.array([-7, 10, 1000])[k]
    np.savez(tmp_path / "d.npz", X=X, y=labels)
    code, out, err = cli(capsys, "train", tmp_path / "d.npz", "--epochs", 30,
                         "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert summary_value(out, "network").startswith("2-256-3 ")
    _, info = fastbp.load(tmp_path / "m.npz", return_info=True)
    assert info["classes"] == [-7, 10, 1000]
    code, out, err = cli(capsys, "predict", tmp_path / "m.npz", tmp_path / "d.npz")
    predicted = np.array([int(v) for v in out.splitlines()[1:]])
    assert set(predicted) <= {-7, 10, 1000}
    assert np.mean(predicted == labels) >= 0.9


def test_regression_from_npz(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = X @ np.array([0.5, -1.0, 0.25]) + 0.1
    np.savez(tmp_path / "r.npz", X=X, y=y)
    code, out, err = cli(capsys, "train", tmp_path / "r.npz", "--epochs", 40, "--lr",
                         0.01, "--dtype", "float64", "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert "mse" in summary_value(out, "network")
    assert float(summary_value(out, "held-out").split()[1]) > 0.9  # R^2
    code, out, err = cli(capsys, "predict", tmp_path / "m.npz", tmp_path / "r.npz")
    values = np.array([float(v) for v in out.splitlines()[1:]])
    assert values.shape == (300,)
    assert np.array_equal(values, fastbp.load(tmp_path / "m.npz").predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_with_a_saved_estimator(capsys, tmp_path):
    estimators = pytest.importorskip("fastbp.sklearn")
    X, k = blobs()
    est = estimators.MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0)
    est.fit(X, np.array(["a", "b", "c"])[k])
    fastbp.save(est, tmp_path / "est.npz")
    np.savez(tmp_path / "x.npz", X=X)
    code, out, err = cli(capsys, "predict", tmp_path / "est.npz", tmp_path / "x.npz")
    assert code == 0, err
    assert out.splitlines()[1:] == list(est.predict(X))
    code, out, err = cli(capsys, "info", tmp_path / "est.npz")
    assert code == 0 and summary_value(out, "estimator").startswith("MLPClassifier(")


def test_progress_lines_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    code, out, err = cli(capsys, "train", "--epochs", 2, "--hidden", 8, "--progress")
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"epoch 2/2  loss [\d.]+  val_loss [\d.]+  val_acc [\d.]+  "
                        r"[\d,]+ samples/s", lines[1])


def test_plot_without_matplotlib_says_how_to_install(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for args in (["train", "--plot", tmp_path / "t.png"],
                 ["plot", tmp_path / "missing.npz", tmp_path / "t.png"]):
        code, out, err = cli(capsys, *args)
        assert code == 2 and out == ""  # refused before any training
        assert err == 'fastbp: error: plotting needs matplotlib; install it with: ' \
                      'pip install "fastbp[plot]"\n'


def test_a_diverging_loss_exits_with_1(capsys, monkeypatch, tmp_path):
    def diverge(self, *args, **kwargs):
        raise FloatingPointError("The loss became non-finite at epoch 1, batch 3;\n"
                                 "lower the learning rate.")

    monkeypatch.setattr(fastbp.MLP, "_epoch", diverge)
    code, out, err = cli(capsys, "train", "--save", tmp_path / "never-written.npz")
    assert (code, out) == (1, "")
    assert err == ("fastbp: error: The loss became non-finite at epoch 1, batch 3; "
                   "lower the learning rate.\n")
    assert not os.listdir(tmp_path)


def test_help_and_version(capsys):
    assert cli(capsys, "--version")[1] == f"fastbp {fastbp.__version__}\n"
    code, out, _ = cli(capsys, "train", "--help")
    assert code == 0 and "--clip-norm" in out and "--validation-fraction" in out


# --- every bad input: one line, exit status 2 -------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A directory of good and bad inputs, by name."""
    d = tmp_path_factory.mktemp("inputs")
    net = fastbp.MLP([64, 8, 10], random_state=0)
    net.fit(digits_X(), load_digits().target, epochs=1)
    fastbp.save(net, d / "model.npz")
    raw = (d / "model.npz").read_bytes()
    (d / "truncated.npz").write_bytes(raw[:len(raw) // 2])
    (d / "text.npz").write_text("not a model\n")
    np.savez(d / "foreign.npz", X=np.zeros((3, 2)), y=np.zeros(3))
    with np.load(d / "model.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(str(arrays["fastbp_meta"][0]))
    meta["format_version"] = 99
    arrays["fastbp_meta"] = np.array([json.dumps(meta)])
    np.savez(d / "newer.npz", **arrays)
    corrupted = bytearray(raw)
    corrupted[len(raw) // 3] ^= 0xFF
    (d / "corrupted.npz").write_bytes(bytes(corrupted))

    header = ["a", "b", "label"]
    write_csv(d / "good.csv", header, [[1, 2, "x"], [2, 1, "y"]] * 5)
    (d / "ragged.csv").write_text("a,b,label\n1,2,x\n3,4\n")
    write_csv(d / "nan.csv", header, [[1, 2, "x"], [2, "nan", "y"]])
    write_csv(d / "gap.csv", header, [[1, 2, "x"], [2, "", "y"]])
    write_csv(d / "words.csv", header, [[1, 2, "x"], ["two", 1, "y"]])
    write_csv(d / "numbers.csv", ["a", "b", "c"], [[1, 2, 3], [4, 5, 6]])
    write_csv(d / "one_class.csv", header, [[1, 2, "x"], [2, 1, "x"]])
    (d / "empty.csv").write_text("")
    (d / "binary.csv").write_bytes(b"\xff\xfe\x00\x01a,b\n")
    np.savez(d / "nan.npz", X=np.array([[1.0, np.nan], [0.0, 1.0]]), y=np.array([0, 1]))
    np.savez(d / "no_y.npz", X=np.zeros((2, 2)))
    np.savez(d / "complex.npz", X=np.zeros((2, 2)), y=np.array([1 + 2j, 0j]))
    return d


@pytest.mark.parametrize("args, message", [
    (["train", "nope.csv", "--target", "label"], "nope.csv: No such file or directory"),
    (["train", "{d}/data.txt"], "unknown data source"),
    (["train", "{d}/ragged.csv", "--target", "label"],
     "ragged.csv is malformed: line 3 has 2 field(s), the header has 3"),
    (["train", "{d}/good.csv", "--target", "y"],
     "has no column 'y'; its columns are 'a', 'b', 'label'"),
    (["train", "{d}/good.csv"], "name the target column with --target"),
    (["train", "{d}/nan.csv", "--target", "label"], "line 3: column 'b' holds nan"),
    (["train", "{d}/gap.csv", "--target", "label"], "line 3: column 'b' is empty"),
    (["train", "{d}/words.csv", "--target", "label"], "holds 'two', not a number"),
    (["train", "{d}/one_class.csv", "--target", "label"], "single class ('x')"),
    (["train", "{d}/empty.csv", "--target", "label"], "empty.csv is empty"),
    (["train", "{d}/binary.csv", "--target", "label"], "not a UTF-8 text CSV"),
    (["train", "{d}/nan.npz"], "X contains NaN"),
    (["train", "{d}/no_y.npz"], "must hold arrays named X and y"),
    (["train", "{d}/complex.npz"], "y must hold real numbers or strings"),
    (["train", "{d}/text.npz"], "text.npz is not a readable .npz archive"),
    (["train", "{d}/truncated.npz"], "truncated.npz is not a readable .npz archive"),
    (["train", "{d}/good.csv", "--target", "label", "--loss", "mse"],
     "mse needs numeric targets"),
    (["train", "--activation", "swish"], "Unknown --activation 'swish'"),
    (["train", "--loss", "hinge"], "Unknown --loss 'hinge'"),
    (["train", "--optimizer", "lbfgs"], "Unknown --optimizer 'lbfgs'"),
    (["train", "--epochs", "0"], "--epochs must be in [1, inf]; got 0"),
    (["train", "--lr", "-1"], "lr must be in (0.0, inf]; got -1.0"),
    (["train", "--batch-size", "0"], "batch_size must be in [1, inf]; got 0"),
    (["train", "--clip-norm", "0"], "clip_norm must be in (0.0, inf]"),
    (["train", "--validation-fraction", "1"], "--validation-fraction must be in"),
    (["train", "--threads", "0"], "n_threads must be positive"),
    (["train", "--dtype", "float16"], "invalid choice: 'float16'"),
    (["train", "--hidden", "64,x"], "comma-separated integers"),
    (["train", "--seed", "-1"], "--seed must be in [0, inf]; got -1"),
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ([], "choose a command"),
    (["info", "{d}/missing.npz"], "missing.npz: No such file or directory"),
    (["info", "{d}/truncated.npz"], "truncated.npz is truncated or damaged"),
    (["info", "{d}/corrupted.npz"], "corrupted.npz is corrupted"),
    (["info", "{d}/text.npz"], "text.npz is not a fastbp model file"),
    (["info", "{d}/foreign.npz"], "foreign.npz is an .npz archive but not a fastbp"),
    (["info", "{d}/newer.npz"], "newer.npz was written by a newer fastbp"),
    (["plot", "{d}/newer.npz", "{d}/t.png"], "written by a newer fastbp"),
    (["predict", "{d}/truncated.npz", "digits"], "truncated or damaged"),
    (["predict", "{d}/model.npz", "{d}/numbers.csv"],
     "X has 3 features, but the model expects 64"),
    (["predict", "{d}/model.npz", "{d}/nan.npz"], "X contains NaN"),
])
def test_bad_input(capsys, files, args, message):
    code, out, err = cli(capsys, *[a.format(d=files) for a in args])
    assert code == 2
    assert err.startswith("fastbp") and err.endswith("\n") and err.count("\n") == 1
    assert "Traceback" not in err
    assert message in err
    assert out == ""


def test_predict_needs_the_trained_columns(capsys, files, tmp_path):
    assert cli(capsys, "train", files / "good.csv", "--target", "label", "--epochs", 1,
               "--validation-fraction", 0, "--save", tmp_path / "m.npz")[0] == 0
    write_csv(tmp_path / "other.csv", ["a", "c"], [[1, 2]])
    code, out, err = cli(capsys, "predict", tmp_path / "m.npz", tmp_path / "other.csv")
    assert code == 2 and err == (f"fastbp: error: {tmp_path / 'other.csv'} lacks the "
                                 "feature column(s) 'b' the model was trained on.\n")
