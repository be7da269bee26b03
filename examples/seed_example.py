"""The final example of "Getting data in and out of Tune", with only the imports
changed from Ray Tune's. The MLflow callback is used when mlflow is installed,
tracking into ./mlruns, as in the guide.
"""

import os
import pickle
import tempfile
import time

import pandas as pd

import tune_client as tune

try:
    from tune_client.logger.mlflow import MLflowLoggerCallback

    callbacks = [MLflowLoggerCallback(experiment_name="example")]
except ImportError:
    callbacks = []

data = pd.DataFrame({"A": [1, 2, 3], "B": [4, 5, 6]})


def training_function(config, data):
    model = {
        "hyperparameter_a": config["hyperparameter_a"],
        "hyperparameter_b": config["hyperparameter_b"],
    }
    epochs = config["epochs"]

    # Load the checkpoint, if there is any.
    checkpoint = tune.get_checkpoint()
    start_epoch = 0
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "model.pkl"), "rb") as f:
                checkpoint_dict = pickle.load(f)
        start_epoch = checkpoint_dict["epoch"] + 1
        model = checkpoint_dict["state"]

    # Simulate training & evaluation - we obtain back a "metric" and a "trained_model".
    for epoch in range(start_epoch, epochs):
        # Simulate doing something expensive.
        time.sleep(1)
        metric = (0.1 + model["hyperparameter_a"] * epoch / 100) ** (-1) + model[
            "hyperparameter_b"
        ] * 0.1 * data["A"].sum()

        checkpoint_dict = {"state": model, "epoch": epoch}

        # Create the checkpoint.
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            with open(os.path.join(temp_checkpoint_dir, "model.pkl"), "wb") as f:
                pickle.dump(checkpoint_dict, f)
            tune.report(
                {"metric": metric},
                checkpoint=tune.Checkpoint.from_directory(temp_checkpoint_dir),
            )


tuner = tune.Tuner(
    tune.with_parameters(training_function, data=data),
    param_space={
        "hyperparameter_a": tune.uniform(0, 20),
        "hyperparameter_b": tune.uniform(-100, 100),
        "epochs": 10,
    },
    tune_config=tune.TuneConfig(num_samples=4, metric="metric", mode="max"),
    run_config=tune.RunConfig(callbacks=callbacks),
)

if __name__ == "__main__":
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 160)
    results = tuner.fit()
    print(results.get_dataframe())
