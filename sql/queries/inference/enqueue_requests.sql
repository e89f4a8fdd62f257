-- `feedback-loop predict` enqueues a whole file in one COPY.
COPY inference_requests (model_name, input, slice) FROM STDIN
