"""Request and response bodies of the data plane: OIP v2 and MLflow scoring JSON, to numpy and back.

Every request is decoded on the request path, so the common case is a handful of C calls: orjson parses the
body, one ``np.array`` call turns all columns into a block, and vectorised checks validate it. Only a request
that fails that fast path (nulls, strings, mixed nesting, a bad value) takes the per-column path, which finds
and names the offending input, row and value. Rows in messages count from 0.

What the decoders accept, for a model whose signature has (the forms each format allows are in
:mod:`workbench.serving.codec.oip` and :mod:`workbench.serving.codec.mlflow_json`)

* **columns** — the signature's columns, by name or in signature column order.
* **a tensor** — exactly one input whose shape matches the spec; the batch dimension is free.
* **no signature** — a single numeric input, passed through as float32 ``[n, k]``; or named columns (several
  OIP inputs, an MLflow data frame), each optional, typed by what the request sends.

A required column must be present and hold no null, NaN or ±inf; an optional one may be absent (all missing)
or hold missing values (NaN in numeric columns; an integer or boolean column with missing values decodes as
float64). A tensor model's input may hold no NaN or ±inf at all. JSON has no NaN: a body that spells
``NaN``/``Infinity`` (as Python's ``json`` module does) is parsed anyway, so the answer names the input.

Layout: ``oip`` and ``mlflow_json`` read and write the two formats and decode into :class:`Decoded`
(``decoded``), through layers they share: ``_json`` (body parsing, response serialisation, message pieces),
``_columns`` (column schemas: the per-schema plan, the fast block path and the per-column path), ``_tensor``
(tensor inputs) and ``_numeric`` (narrowing, finiteness, exact integer conversion).
"""

from workbench.serving.codec.decoded import Decoded
from workbench.serving.codec.mlflow_json import decode_mlflow, encode_mlflow
from workbench.serving.codec.oip import decode_oip, encode_oip

__all__ = ["Decoded", "decode_mlflow", "decode_oip", "encode_mlflow", "encode_oip"]
