"""One Optuna worker for notebook 07: joins the study in a journal file and runs its share of trials.

Several copies of this script, started at once, share the study through the journal: each trial
they run is appended to the file, and the sampler of each worker sees the others' trials.

    python hpo_worker.py --journal /tmp/study.log --trials 10 --seed 0
"""

from __future__ import annotations

import argparse
import warnings

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import cross_val_score, train_test_split

LOSSES, PENALTIES = ["hinge", "log_loss", "modified_huber"], ["l2", "l1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journal", required=True, help="path of the journal file shared by the workers")
    parser.add_argument("--trials", type=int, required=True, help="trials this worker runs")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed (give each worker its own)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_digits(return_X_y=True)
    X_dev, _, y_dev, _ = train_test_split(X / 16.0, y, train_size=600, stratify=y, random_state=0)

    def objective(trial: optuna.Trial) -> float:
        model = SGDClassifier(max_iter=10, tol=None, random_state=0,
                              alpha=trial.suggest_float("alpha", 1e-6, 1, log=True),
                              loss=trial.suggest_categorical("loss", LOSSES),
                              penalty=trial.suggest_categorical("penalty", PENALTIES))
        return cross_val_score(model, X_dev, y_dev, cv=3).mean()

    storage = JournalStorage(JournalFileBackend(args.journal))
    study = optuna.create_study(study_name="digits-sgd", storage=storage, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    study.optimize(objective, n_trials=args.trials)


if __name__ == "__main__":
    main()
