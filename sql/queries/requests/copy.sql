-- Requests without an app's id (a file for `feedback-loop predict`) go in with one COPY; ids reserved first.
COPY inference_requests (id, model_name, request_id, input, slice) FROM STDIN
