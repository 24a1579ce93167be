"""Every setting of the project in one place: edit here, or override on the command line.

Plain values only: nothing here runs, loads or trains at import time.
"""

# --- data -------------------------------------------------------------------------------------
DATA_DIR = "data"  # torchvision's MNIST root: the files live in DATA_DIR/MNIST/raw/
DATA_DIR_ENV = "BIASED_VAE_DATA_DIR"  # environment variable that overrides DATA_DIR (used by tests and CI)
DOWNLOAD = True  # let torchvision download MNIST when it is missing (needs internet)
VALIDATION_SPLIT = 0.1  # share of the 60,000 training images held out for validation / early stopping

# --- model ------------------------------------------------------------------------------------
LATENT_DIM = 4
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0  # clamp on the encoder's log-variance: keeps exp() finite for any beta

# --- the expert's goal ------------------------------------------------------------------------
EXPERT_GOALS = [6]  # one or more digits the expert wants more of
EXPERT_LABELS = None  # how many goal images the expert labelled (the first n of a seeded shuffle); None: all
LABELLED_ONLY_KL = False  # bias-keeping variant: goal/GMM KL on the expert-labelled images only, N(0, I) on the rest

# --- objectives -------------------------------------------------------------------------------
BETA_BASE = 1.0  # weight of KL(q(z|x) || N(0, I)) for the base VAE
BETA_GOAL = 1.0  # weight of KL(q(z|x) || N(mu_p, diag sigma_p^2)) for the goal VAE
BETA_GMM = 1.0  # weight of the Monte Carlo KL to the mixture prior for the GMM VAE
GMM_N_COMPONENTS = 5
GMM_COVARIANCE_TYPE = "full"  # any of scikit-learn's: "full", "tied", "diag", "spherical"
GMM_REG_COVAR = 1e-4  # added to each covariance diagonal (scikit-learn's reg_covar): keeps the prior well conditioned
GMM_KL_SAMPLES = 1  # reparameterised samples of z ~ q(z|x) per image for the Monte Carlo KL

# --- optimisation -----------------------------------------------------------------------------
SEED = 0
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
EPOCHS_BASE = 12
EPOCHS_FINETUNE = 6  # goal and GMM VAEs start from the trained base model
PATIENCE = 3  # early stopping: epochs without a better validation loss
LR_PATIENCE = 1  # ReduceLROnPlateau: epochs without improvement before the learning rate is halved
GRAD_CLIP = 10.0  # max global gradient norm
CHANNELS_LAST = True  # memory layout for the conv layers: measured faster on CPU (see bench.py)

# --- outputs ----------------------------------------------------------------------------------
OUT_DIR = "."  # figures go to OUT_DIR/figures, checkpoints to OUT_DIR/models
QUICK_OUT_DIR = "runs/quick"  # --quick writes here, never over the committed figures
QUICK_TRAIN_IMAGES = 6000  # --quick: training subset (validation and test shrink in proportion)
QUICK_EPOCHS = 2
N_SAMPLE_GRID = 64  # images in each sample grid figure

# --- evaluation (evaluate.py) -----------------------------------------------------------------
CLASSIFIER_EPOCHS = 6  # measured: 99.2% test accuracy, every digit >= 98.3%, in ~75 s on 2 CPU cores
CLASSIFIER_LR = 3e-3  # peak of the one-cycle schedule
EVAL_SAMPLES = 10000  # decoded samples per model and source
QUICK_EVAL_SAMPLES = 2000
QUICK_CLASSIFIER_EPOCHS = 1

# --- study (study.py) -------------------------------------------------------------------------
STUDY_SEEDS = [0, 1, 2]  # every study number is a mean and spread over these seeds
STUDY_BETAS = [0.1, 0.3, 1.0, 3.0]  # beta grid for the goal and GMM VAEs
STUDY_LABEL_BUDGETS = [10, 100, 1000, None]  # expert labels; None: all goal images
STUDY_GOAL_SETS = [[6], [6, 9], [3, 8]]  # the first is the main goal; the pairs test several goals at once
STUDY_EVAL_SAMPLES = 5000  # decoded samples per model and source
STUDY_OUT_DIR = "runs/study"  # checkpoints and per-seed results; figures go to figures/
QUICK_STUDY_OUT_DIR = "runs/study-quick"
# --quick: the same study, smaller in every direction (about a minute on 2 cores; numbers are not meaningful)
QUICK_STUDY = {"betas": [0.3, 3.0], "label_budgets": [10, None], "goal_sets": [[6], [6, 9]],
               "train_images": 2000, "epochs": 1, "eval_samples": 500}
