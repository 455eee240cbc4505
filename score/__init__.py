"""score stage: stream a CSV or Parquet file of comments through onnxruntime into Parquet.

The flow, by file name: model_folder (+ variant_rule) says what runs; input* reads chunks;
predict tokenizes and scores them; output* writes them. The local engine is run (+ run_pipeline,
its threads); the Ray engine is ray_engine (the driver) and ray_workers (what workers run).
"""
