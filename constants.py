"""Every default of the project in one place: edit here, or override on the command line.

Plain values only: nothing here runs, loads or trains at import time. Each run setting is declared (flag, help,
check, which artefacts it affects) once, in config.py, which reads its default from here under the same name in
capitals: the setting `lr` is LR here and --lr on the command line.
"""

# --- data -------------------------------------------------------------------------------------
DATASET = "mnist"  # "mnist" or "fashion-mnist" (datasets.py)
IMAGE_SIZE = 28  # both datasets: 28 x 28 grey images (the models' and the classifier's layer shapes follow from it)
N_CLASSES = 10  # both datasets: ten classes (goals, the CVAE's labels, the classifier's outputs)
DATA_DIR = "data"  # torchvision's root: DATA_DIR/MNIST/raw/ and DATA_DIR/FashionMNIST/raw/
DATA_DIR_ENV = "BIASED_VAE_DATA_DIR"  # environment variable that overrides DATA_DIR (used by tests and CI)
DOWNLOAD = True  # let torchvision download a dataset that is missing (needs internet)
VALIDATION_SPLIT = 0.1  # share of the 60,000 training images held out for validation / early stopping
TRAIN_IMAGES = None  # None: every training image; a number: only that many (quick runs and tests)

# --- model ------------------------------------------------------------------------------------
# the seed design had 4. 32 since 2026-12-02, 16 before: the two whole studies, measured with the same code
# (README, The models, the latent-16 comparison), and 8 in the study's designs, class by class
LATENT_DIM = 32
ARCH = "conv"  # the encoder/decoder body (models.BODIES): "conv", the seed design, or "resnet"
# p(x|z): "calibrated-gaussian" (a Gaussian whose variance is the batch's maximum-likelihood one; README: measured
# against "bernoulli", the previous default, in the study), "bernoulli" (binary cross-entropy) or "gaussian"
# (squared error with a fixed variance, the seed design)
LIKELIHOOD = "calibrated-gaussian"
HIDDEN = 128  # width of the fully connected layer between the convolutions and the latent
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0  # clamp on the encoder's log-variance: keeps exp() finite for any beta

# --- the expert's goal ------------------------------------------------------------------------
GOALS = [6]  # one or more classes the expert wants more of (MNIST: digit 6; Fashion-MNIST: 6 is "shirt")
LABEL_DRAW = 0  # which seeded draw of the expert's labels (0, 1, 2, ...): independent of SEED, which trains the models
EXPERT_LABELS = None  # labelled images per goal class (the first n of a seeded shuffle); None: all of them
LABELLED_ONLY_KL = False  # bias-keeping variant: goal/GMM KL on the expert-labelled images only, N(0, I) on the rest

# --- objectives -------------------------------------------------------------------------------
BETA_BASE = 1.0  # weight of KL(q(z|x) || N(0, I)) for the base VAE (and the CVAE)
BETA_GOAL = 1.0  # weight of KL(q(z|x) || N(mu_p, diag sigma_p^2)) for the goal VAE
BETA_GMM = 1.0  # weight of the Monte Carlo KL to the mixture prior for the GMM VAE
GMM_COMPONENTS = 5  # at most; fewer with few labels (models.gmm_shape)
GMM_COVARIANCE_TYPE = "full"  # any of scikit-learn's: "full", "tied", "diag", "spherical"
GMM_REG_COVAR = 1e-4  # added to each covariance diagonal (scikit-learn's reg_covar): keeps the prior well conditioned
GMM_KL_SAMPLES = 1  # reparameterised samples of z ~ q(z|x) per image for the Monte Carlo KL

# --- optimisation -----------------------------------------------------------------------------
SEED = 0
BATCH_SIZE = 64
LR = 3e-3  # the schedule's peak
LR_SCHEDULE = "one-cycle"  # "one-cycle": warm-up then cosine decay (Smith & Topin 2018); "plateau": halve on a plateau
WARMUP = 0.05  # one-cycle: share of the steps spent warming up
EPOCHS_BASE = 12
EPOCHS_FINETUNE = 3  # goal and GMM VAEs start from the trained base model (3 keeps alltests.py within 10 min)
PATIENCE = 3  # early stopping: epochs without a better validation loss
LR_PATIENCE = 1  # "plateau" schedule: epochs without improvement before the learning rate is halved
GRAD_CLIP = 10.0  # max global gradient norm
CHANNELS_LAST = True  # memory layout for the conv layers: measured faster on CPU (see bench.py)

# --- biased samplers (samplers.py) ------------------------------------------------------------
# The measurements in this section's comments were made at a latent of 16, the default until 2026-12-02 (where one
# is of the latent of 32, it says so); the study measures every setting at the default on every class
SAMPLER = "graph"  # what sample.py draws from by default: the best method measured (README)
# the graph's features: "latent-means" (the posterior means) or "hidden" (the encoder's layer before the latent).
# Measured on the found images over every class of both datasets, 3 label draws, 1, 3 and 10 labels (purity: mean,
# worst draw, draws below 0.9 of 30; recall: mean), hidden -> latent means, everything else the default:
# - the study's base VAEs (2026-12-02): MNIST from 1 label 0.881 -> 0.933 (worst 0.51 -> 0.56; 9 -> 5 draws),
#   3 labels 0.962 -> 0.973, 10 labels 0.979 -> 0.988 (worst 0.64 -> 0.97), recall 0.87-0.91 -> 0.87-0.93;
#   Fashion-MNIST 0.575 -> 0.582 from 1 label (its worst draw, a trouser, 0.12 -> 0.03), 0.644 -> 0.674 from 3,
#   0.737 -> 0.734 from 10, recall 0.591 -> 0.568 from 1 label, 0.705 -> 0.689 from 3, 0.762 -> 0.786 from 10;
# - held out, alltests.py's base VAEs: MNIST from 1 label 0.892 -> 0.937 (8 -> 5 draws), 3 labels 0.961 -> 0.959,
#   10 labels 0.979 -> 0.990 (worst 0.65 -> 0.98); Fashion-MNIST 0.556 -> 0.578 from 1 label, 0.640 -> 0.687 from
#   3, 0.739 -> 0.755 from 10, recall 0.564 -> 0.511, 0.690 -> 0.639, 0.765 -> 0.773.
# So: a clear gain on MNIST, purer but smaller sets on Fashion-MNIST from few labels. The hidden features
# L2-normalised or standardised, both spaces concatenated, and the union of both graphs did no better. Where it
# loses: a VAE trained briefly (alltests.py --quick: 3,000 images, 2 epochs), whose means separate the classes less
# than its hidden layer does (MNIST, every class, 3 draws, from 10 labels: mean purity 0.397 against 0.491), and a
# 2-d latent (the samplers' test VAE, the seed's design trained as briefly; draw 0 of every class, from 3 labels
# 0.308 against 0.343, from 10 labels 0.326 against 0.381)
GRAPH_FEATURES = "latent-means"
GRAPH_NEIGHBOURS = 10  # k of the k-nearest-neighbour graph over the training images' features
# the discovery's second opinion: the walks run again on the k-NN graph of the features' UMAP embedding, with N2D's
# settings for both datasets (McConville et al. 2020: as many dimensions as classes, 20 neighbours, min_dist 0), and
# what both graphs found seeds a last walk on the first (samplers.found_goal_images). 0 components: one graph.
# Measured on the found images over every class of both datasets, 3 label draws, 1, 3 and 10 labels (purity mean
# (worst draw), recall mean; draws with purity >= 0.95 and recall >= 0.8, of 30), the means' graph -> both graphs:
# - the study's base VAEs (2026-12-02): MNIST from 1 label 0.933 (0.561) -> 0.985 (0.951), recall 0.871 -> 0.890,
#   23 -> 29 draws; from 3 labels 0.973 (0.641) -> 0.984 (0.931), 28 -> 28; from 10 labels 0.988 -> 0.988, 30 -> 30;
#   Fashion-MNIST 0.582 (0.035) -> 0.595 (0.033) from 1 label, 0.674 (0.228) -> 0.692 (0.204) from 3, 0.734 ->
#   0.742 from 10, recall 0.568 -> 0.557, 0.689 -> 0.688, 0.786 -> 0.782, draws 2 -> 2, 5 -> 5, 7 -> 7. From 1 label
#   on MNIST the means' graph is below 0.95 pure on 5 draws, the embedding's on 6, both on 4 (a 3, a 4, two 9s),
#   where what both found is 0.949 pure or more;
# - held out, alltests.py's base VAEs: MNIST from 1 label 0.937 (0.604) -> 0.954 (0.609), 23 -> 26 draws; from 3
#   labels 0.959 (0.642) -> 0.967 (0.642) (worst recall 0.500 -> 0.841), 26 -> 28; from 10 labels 0.990 -> 0.990,
#   30 -> 30;
#   Fashion-MNIST 0.578 (0.066) -> 0.579 (0.039) from 1 label, 0.687 -> 0.691 from 3, 0.755 -> 0.755 from 10 (8 -> 9
#   draws). The control, the means' graph agreeing with itself (the extra walk without a second graph): MNIST from 1
#   label 0.933 (0.574), 24 draws, on the study's VAE, 0.937 (0.604) held out; Fashion-MNIST 0.575, 0.669, 0.726 from
#   1, 3, 10 labels on the study's: the purity gained is the second graph's.
# The embedding's graph alone is worse from 3 and 10 labels on the study's MNIST VAE (0.948 and 0.949, 23 draws each),
# and what both found, without the last walk, loses recall (MNIST from 1 label 0.862, Fashion-MNIST from 10
# labels 0.695). Where the two sets overlap in under half of the smaller one, the first graph's stands alone: 2 of the
# 360 draws above (held out, an MNIST 8 from 1 label, overlap 28%, whose overlap was another digit's fringe:
# purity 0.70 alone, 0.00 with it; the study's Fashion-MNIST pullover from 3 labels, 49.8%). Cost: the embedding
# takes about 60 s for MNIST and 30 s for Fashion-MNIST on this machine's 2 cores, once per trained VAE.
# Every number above was measured while UMAP searched its neighbours itself (approximately, with pynndescent: the
# code of 036db12). Since 2026-12-02 it is given the exact k-NN list (samplers.umap_embedding), which changes the
# embedding, and its time little at this size (on 60,000 random 4-d points, 61 s against 67 s). With it,
# the study's VAEs (now figures/study-latent-16/study.json, graph's found images; same measures as above): MNIST
# from 1 label 0.961
# (0.556), recall 0.886, 27 draws; from 3 labels 0.984 (0.930), 28; from 10 labels 0.988 (0.973), 30;
# Fashion-MNIST 0.583 (0.032), 0.675 (0.201), 0.736 (0.288) from 1, 3, 10 labels, 2, 5, 8 draws. Against the
# means' graph alone MNIST from 1 label still gains on average and in draws, not in the worst draw (two 9 draws
# where both graphs took the 4s in); Fashion-MNIST is level on average (its worst draw from 3 labels 0.228 ->
# 0.201).
# Those two 9 draws, each graph alone (purity, share of 4s): draw 0 the means' 0.610, 0.382, the embedding's 0.603,
# 0.375, overlap 95% of the smaller set, result 0.613; draw 2 the means' 0.632, 0.314, the embedding's 0.486, 0.499,
# overlap 78%, result 0.556 (below the means' graph alone).
# The spread over UMAP's seed (random_state; the study's VAE, MNIST, 1 label, 30 class draws; purity mean (worst),
# recall mean, draws pure and complete): seed 0 (the study's) 0.961 (0.556), 0.886, 27; seed 1 0.983 (0.915),
# 0.891, 26; seed 2 0.950 (0.561), 0.885, 26; seed 3 0.983 (0.912), 0.891, 27; the means' graph alone 0.933 (0.561),
# 23.
# Under 0.95 pure: the 9's draws 0 and 2 on every seed, and the 3's draw 2 (seed 1) and the 8's draw 0 (seed 2)
# Every measurement above is of the latent of 16, the default until 2026-12-02. At the latent of 32 (the study's
# VAE at that size, trained for the latent-32 study; the same measures, 1 label): the means' graph alone 0.917
# (0.6335, the 8's draw 0), 21 draws; with the second graph seed 0 0.992 (0.973), 0.902, 29; seed 1 0.992 (0.977), 29; seed 2
# 0.992 (0.976), 29; seed 3 0.991 (0.975), 29; no draw under 0.95 pure on any seed (the one draw short of complete
# is the 7's draw 1, pure, recall 0.08). The embedding of the larger latent keeps the 9s from the 4s on every seed,
# where its means alone do not: on the 9's draws 0 and 2 the means' graph alone is 0.6345 and 0.683 pure (36% and
# 31% 4s), the embedding's alone 0.956 both (2% 4s)
# Where agreement cannot help at 32 (Fashion-MNIST, the sneaker's draw 2 from 3 labels; sneaker share, ankle-boot
# share): the means' graph 0.272, 0.714; the embedding's 0.589, 0.325; their overlap (85% of the smaller set) 0.318,
# 0.666; the result 0.255, 0.729 (at 16 the same draw found 0.719 sneakers)
# N2D's own last step, measured instead of the walks (2026-12-02, not built): a Gaussian mixture with as many
# full-covariance components as classes (scikit-learn, seed 0) fitted to the same embedding, the goal found as the
# component most of the expert's images fall in. On the latent-16 study's VAEs the clusters match the classes less well than
# N2D's (majority-class accuracy 0.878 on MNIST, where one component holds the 4s and the 9s together; 0.636 on
# Fashion-MNIST, N2D 0.672), and against the walks (purity mean (worst draw), draws pure and complete, of 30): MNIST
# from 1 label 0.876 (0.489) and 21 against 0.961 (0.556) and 27; from 10 labels 0.876 and 21 against 0.988 and 30;
# from 3 labels 0.876 and 21 against 0.984 and 28; Fashion-MNIST from 1 label 0.515 and 2 against 0.583 and 2; from 3
# labels 0.584 and 3 against 0.675 and 5; from 10 labels 0.601 and 3 against 0.736 and 8. As a filter (the images in
# both the component and the walks' set): MNIST 0.961, 0.987, 0.989 pure from 1, 3, 10 labels (the walks 0.961,
# 0.984, 0.988), recall 0.886 -> 0.839 from 1 label, 0.927 -> 0.882 from 10; Fashion-MNIST 0.586, 0.673, 0.744 (the
# walks 0.583, 0.675, 0.736), recall 0.789 -> 0.601 from 10; draws pure and complete fewer at every budget but
# Fashion-MNIST's 1 label (2 each). So the mixture is neither the discovery nor a filter on it
GRAPH_UMAP_COMPONENTS = N_CLASSES  # N2D: as many dimensions as classes
GRAPH_UMAP_NEIGHBOURS = 20  # N2D's n_neighbors, for both datasets
GRAPH_RESTART = 0.01  # personalised PageRank: probability of jumping back to a labelled image at each step
GRAPH_CORE = 0.8  # keep a found image when at least this share of its neighbours was found too
GRAPH_MAX_SHARE = 0.15  # the goal class is taken to hold at most this share of the images (10 classes: about 0.1)
# A share estimated from the data instead of this cap was measured (2026-12-02, the latent-16 study's MNIST VAE, the
# means' graph's ranking, not built): if the expert's images are a random sample of their class (positive-unlabelled learning's "selected
# completely at random"), one left out of the walk ranks uniformly among the class's images, so twice the median
# rank of each left out in turn estimates the class's size. From 10 labels the estimate lay between 0.41 and 1.68
# times the true size (median 0.99), from 3 labels between 0.01 and 2.38: too loose to cut at; and the top of the
# walk's ranking, even cut at the class's true size, is less pure than the walks' cut (0.948 on average from 10
# labels, 0.901 to 0.984 by draw, where the two graphs' found images are 0.988 on average, worst 0.973), so the cap
# stays
GRAPH_ROUNDS = 2  # PageRank walks, each seeded from the set the one before cut (samplers.found_goal_images)
# every walk but the last cuts at the smallest set within this factor of the lowest conductance. Chosen against one
# walk (GRAPH_ROUNDS 1) on every class of both datasets, 3 label draws, 1, 3 and 10 labels (mean purity, worst draw):
# - the study's base VAEs, of the cut before the core filter (the committed one-walk study's base VAEs, 2026-12-01):
#   from 10 labels MNIST 0.942 -> 0.969 (worst 0.62 -> 0.94), Fashion-MNIST 0.686 -> 0.715; from 1 label MNIST
#   0.835 -> 0.874, Fashion-MNIST 0.504 -> 0.515; recall within 0.03 of one walk's everywhere;
# - held out, alltests.py's base VAEs, of the found images (the study's measure): from 10 labels MNIST 0.977 ->
#   0.990 (worst 0.66 -> 0.96), Fashion-MNIST 0.705 -> 0.723 (recall 0.798 -> 0.776); from 1 label MNIST 0.869 ->
#   0.909, Fashion-MNIST 0.556 -> 0.576. A tolerance of 1.2 did the same; the share cap stays essential
GRAPH_CUT_TOLERANCE = 1.1
GRAPH_TEMPERATURE = 0.25  # the graph sampler draws z ~ N(mu(x), GRAPH_TEMPERATURE * sigma^2(x)) around found images
PSEUDO_EPOCHS = 3  # pseudo-label sampler: epochs of its conditional decoder's fine-tune on found images and others
RATIO_COMPONENTS = 30  # the ratio sampler's density of all training latents: a GMM with this many components
RATIO_ROUNDS = 3  # the ratio sampler's self-training rounds

# --- evaluation (classifier.py, evaluate.py) --------------------------------------------------
CLASSIFIER_EPOCHS = 10  # measured: MNIST 99.2% test accuracy after 6 epochs; Fashion-MNIST 90.6% after 6, 91.2% after 10
CLASSIFIER_LR = 3e-3  # peak of the one-cycle schedule
CLASSIFIER_BATCH_SIZE = 128
EVAL_SAMPLES = 5000  # decoded samples per model and source
PRDC_NEIGHBOURS = 5  # k of the k-nearest-neighbour balls of precision, recall, density and coverage
REPORT_LABEL_BUDGETS = [10, None]  # alltests.py fits every sampler from this many labels per goal (None: all)

# --- outputs ----------------------------------------------------------------------------------
OUT_DIR = "."  # figures go to OUT_DIR/figures, checkpoints to OUT_DIR/models (other datasets: a subfolder each)
QUICK_OUT_DIR = "runs/quick"  # --quick writes here, never over the committed figures
# --quick: these settings instead of the defaults (a smoke test of the whole pipeline; numbers mean nothing)
QUICK = {"train_images": 3000, "epochs_base": 2, "epochs_finetune": 2, "classifier_epochs": 1, "eval_samples": 1000}
N_SAMPLE_GRID = 64  # images in each sample grid figure

# --- study (study.py) -------------------------------------------------------------------------
STUDY_SEEDS = [0]  # the seeds the study's VAEs are trained with (each trains every model anew)
STUDY_DRAWS = [0, 1, 2]  # the expert's label draws per class and budget (LABEL_DRAW): the worst draw is reported
STUDY_DATASETS = ["mnist", "fashion-mnist"]
# the default model (constants above), and the designs it is compared with, by what they change: their decoder
# ceilings only (the samplers run on the default)
# (issue 21): latents of 8 and of 16 (the default before 32) and the residual body, each changed alone from the
# default; the Bernoulli likelihood (the default before the calibrated decoder); the seed design
STUDY_DESIGNS = {"default": {}, "latent 8": {"latent_dim": 8}, "latent 16": {"latent_dim": 16},
                 "resnet": {"arch": "resnet"}, "bernoulli": {"likelihood": "bernoulli"},
                 "seed design": {"arch": "conv", "likelihood": "gaussian", "latent_dim": 4}}
# the default design's whole study again with settings changed (python study.py --variant NAME), measured on
# everything the default is (the samplers too) and set beside it in the README (issue 21): here the default before
# this one, which that comparison replaced
STUDY_VARIANTS = {"latent-16": {"latent_dim": 16}}
STUDY_CLASSES = list(range(N_CLASSES))  # every class is the goal in turn
STUDY_GOAL_SETS = {"mnist": [[6, 9], [3, 8]], "fashion-mnist": []}  # pairs, from the most labels of the curve
STUDY_LABEL_CURVE = [1, 3, 10]  # labels per goal class; every sampler at the last, STUDY_FEW_LABEL_SAMPLERS below it
STUDY_FEW_LABEL_SAMPLERS = ["graph", "pseudo-label", "exemplar"]
STUDY_EVAL_SAMPLES = 2000  # decoded samples per row
STUDY_OUT_DIR = "runs/study"  # unit results, checkpoints and logs; figures go to figures/
QUICK_STUDY_OUT_DIR = "runs/study-quick"
MEDIUM_STUDY_OUT_DIR = "runs/study-medium"
# --quick: the same study, smaller in every direction (a smoke test; its numbers mean nothing)
QUICK_STUDY = {"seeds": [0], "draws": [0, 1], "datasets": ["mnist"], "designs": {"default": {}}, "classes": [6],
               "goal_sets": {"mnist": [[6, 9]]}, "label_curve": [1, 10], "eval_samples": 300,
               "run": {"train_images": 1500, "epochs_base": 1, "epochs_finetune": 1, "classifier_epochs": 1,
                       # one graph: a smoke test of the engine; alltests.py --quick's run and tests/test_samplers.py
                       # run the UMAP graph, the latter also in a fresh process against this one (its compile alone is
                       # about 10 s in each fresh process)
                       "graph_umap_components": 0}}
# --medium: between the two, for measuring how the study scales with workers (bench.py)
MEDIUM_STUDY = {"seeds": [0, 1, 2], "draws": [0], "datasets": ["mnist"], "designs": {"default": {}}, "classes": [6],
                "goal_sets": {"mnist": []}, "label_curve": [10], "eval_samples": 1000,
                "run": {"train_images": 10000, "epochs_base": 3, "epochs_finetune": 2, "classifier_epochs": 2}}
