"""Training, as a few modules that import in one direction (config <- presets; config <- model <-
checkpoint <- state <- fit):

- config.py: TrainConfig, each option declared once (torch-free);
- presets.py: published settings + preset -> TrainConfig (torch-free);
- model.py: HMCModel, the trained predictor;
- checkpoint.py: the file format of models and training states;
- state.py: what a resumed run must match, and restoring a saved state;
- fit.py: the training loop, as named steps.
"""
