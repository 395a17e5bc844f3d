import os

import matplotlib

matplotlib.use("Agg")
os.environ["MLLAB_PROGRESS"] = "0"
