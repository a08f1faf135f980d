"""nerflow's tests; the folders mirror the packages (``tests/ner_core`` tests ``ner_core``)."""
