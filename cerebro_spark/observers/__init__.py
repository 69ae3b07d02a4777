"""What watches a search and shows it: the live progress display, TensorBoard event files, MLflow runs,
history and leaderboard tables, plots and the HTML report.

Between the driver (whose callbacks and records they read) and the Spark ML layer (which creates them
for a ``fit`` and gives their tables to users); no Spark and no Keras are imported here.
"""
