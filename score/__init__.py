"""score stage: stream a CSV or Parquet file of comments through onnxruntime into Parquet."""
