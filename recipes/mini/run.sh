#!/usr/bin/env bash
# The whole pipeline in minutes on a CPU: data, train, average, extract, score, evaluate.
#
#   bash recipes/mini/run.sh [--data DIR [--pattern REGEX]] [--train-minutes M] [--exp DIR] [--heldout N]
#
# Without --data it generates its own corpus with `speakervlad synth` (synthetic
# speech-like audio: it shows that the pipeline learns, not accuracy on real
# speech) and trains conf/mini.yaml. With --data (your recordings: real speech)
# it trains conf/real.yaml, which plans its epochs to use the whole
# --train-minutes budget. Speakers are split: --heldout speakers never seen in
# training give the verification trials. The table compares the trained model
# with the same architecture untrained, on the same trials.
#
# Options (defaults in brackets: synthetic corpus / --data):
#   --data DIR|LIST    speaker-labelled audio: DIR/<speaker>/.../*.wav|flac, a VoxCeleb or Kaldi
#                      folder, a flat folder with --pattern, or a list file [synthetic corpus]
#   --pattern REGEX    speaker from the file name in a flat folder, e.g. '^(?P<speaker>\d+)-'
#   --train-minutes M  wall-clock training budget; training checkpoints and stops when it runs out [6 / 15]
#   --epochs N         training epochs (train.epochs; with conf/real.yaml the most it plans) [the config's]
#   --exp DIR          experiment folder [recipes/mini/exp]
#   --heldout N|P%     held-out speakers, a number or a share of them [8 / 20%]
#   --trials N|all     trials among the held-out speakers (30 % targets), or all pairs [3000 / all]
#   --speakers N --utterances M --seed S   size and seed of the synthetic corpus [48, 16, 0]
#   --synth-dir DIR    where synthetic corpora are written [recipes/mini/data]
#   --config FILE      training config [recipes/mini/conf/mini.yaml / recipes/mini/conf/real.yaml]
#   --jobs J           parallel processes for data generation and checks [nproc]
# Trailing key=value arguments override the config (e.g. data.batch_size=16).
set -euo pipefail

recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
data=
pattern=
train_minutes=
epochs=
exp=$recipe/exp
heldout=
trials=
speakers=48
utterances=16
seed=0
synth_dir=$recipe/data
config=
jobs=$(nproc 2>/dev/null || echo 2)

recipe_name=mini/run.sh
. "$recipe/../lib/common.sh"
parse_options "data pattern train_minutes epochs exp heldout trials speakers utterances seed synth_dir config jobs" "$@"
if [ -z "$data" ]; then  # synthetic voices: a toy setting
  : "${config:=$recipe/conf/mini.yaml}" "${train_minutes:=6}" "${heldout:=8}" "${trials:=3000}"
else  # real speech
  : "${config:=$recipe/conf/real.yaml}" "${train_minutes:=15}" "${heldout:=20%}" "${trials:=all}"
fi

command -v speakervlad >/dev/null 2>&1 ||
  die "the speakervlad command is not on PATH: run 'make mini' from the repository, or 'make setup' and add .venv/bin to PATH"
[ -f "$config" ] || die "no config file $config"
python=$(speakervlad_python)
mkdir -p "$exp"
exp=$(cd "$exp" && pwd)
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

# 1. data ----------------------------------------------------------------------
if [ -z "$data" ]; then
  data=$synth_dir/synth_${speakers}x${utterances}_seed$seed
  log "1/6 data: synthetic corpus, $speakers speakers x $utterances utterances -> $data"
  speakervlad synth --out "$data" --speakers "$speakers" --utterances "$utterances" --seed "$seed" \
    --jobs "$jobs"
else
  [ -e "$data" ] || die "--data $data: no such file or folder"
  data=$(cd "$(dirname "$data")" && pwd)/$(basename "$data")
  log "1/6 data: $data"
fi

# 2. training list + held-out trials --------------------------------------------
stamp="data=$data pattern=$pattern heldout=$heldout trials=$trials seed=$seed"
lists=$exp/data
if [ -f "$lists/stamp" ] && [ -f "$lists/trials.txt" ]; then
  [ "$(cat "$lists/stamp")" = "$stamp" ] ||
    die "$exp was prepared from other data ($(cat "$lists/stamp")); choose another --exp or delete it"
  log "2/6 lists: prepared before ($lists)"
else
  log "2/6 lists: $heldout held-out speakers, $trials trials"
  speakervlad prepare --data "$data" ${pattern:+--pattern "$pattern"} --out "$lists" \
    --heldout "$heldout" --trials "$trials" --target-fraction 0.3 --seed "$seed" --jobs "$jobs"
  echo "$stamp" > "$lists/stamp"
fi

# 3. train (and the same architecture untrained, for comparison) -----------------
train_args=(${epochs:+"train.epochs=$epochs"} "train.max_minutes=$train_minutes" ${overrides[@]+"${overrides[@]}"})
[ -f "$exp/untrained.pt" ] ||
  speakervlad model init "$config" ${overrides[@]+"${overrides[@]}"} -o "$exp/untrained.pt" --seed "$seed"
log "3/6 train: $(basename "$config"), at most $train_minutes minutes ($(elapsed) so far)"
resume=()  # a run that is done returns at once; one stopped by the budget continues
compgen -G "$exp/checkpoints/epoch_*.pt" >/dev/null && resume=(--resume)
speakervlad train --config "$config" --data "$lists/train.tsv" --exp "$exp" --device cpu \
  --jobs "$jobs" ${resume[@]+"${resume[@]}"} "${train_args[@]}"

# 4. average the last epochs into the final model --------------------------------
mapfile -t ckpts < <(compgen -G "$exp/checkpoints/epoch_[0-9][0-9][0-9].pt" | sort)
[ ${#ckpts[@]} -gt 0 ] ||
  die "no epoch finished within --train-minutes $train_minutes; give it more minutes (training resumes where it stopped)"
final=$exp/final.pt
if [ -f "$final" ] && [ "$final" -nt "${ckpts[-1]}" ]; then
  log "4/6 average: done before ($final)"
else
  num=$(( ${#ckpts[@]} < 3 ? ${#ckpts[@]} : 3 ))
  log "4/6 average: last $num epoch checkpoint(s) -> $final"
  speakervlad average --exp "$exp" --last "$num" -o "$final"
fi

# 5. embeddings and scores of the held-out speakers, for both models ---------------
log "5/6 extract + score: held-out speakers ($(elapsed) so far)"
mkdir -p "$exp/scores"
for model in final untrained; do
  emb=$exp/embeddings/$model
  if ! [ -f "$emb/embeddings.npy" ] || [ "$exp/$model.pt" -nt "$emb/embeddings.npy" ]; then
    speakervlad extract --model "$exp/$model.pt" --list "$lists/heldout.tsv" -o "$emb" --jobs "$jobs"
  fi
  speakervlad score --trials "$lists/trials.txt" --embeddings "$emb" -o "$exp/scores/$model.txt"
done

# 6. evaluate -----------------------------------------------------------------------
log "6/6 evaluate"
mkdir -p "$exp/results"
speakervlad eval --trials "$lists/trials.txt" --scores "$exp/scores/final.txt" \
  --det "$exp/results/det.png" --json "$exp/results/trained.json" > "$exp/results/eval_trained.txt"
speakervlad eval --trials "$lists/trials.txt" --scores "$exp/scores/untrained.txt" \
  --json "$exp/results/untrained.json" > "$exp/results/eval_untrained.txt"
echo
echo "Held-out speakers ($(grep -c . "$lists/trials.txt") trials; $data):"
"$python" "$recipe/../voxceleb/local/results_table.py" --markdown "$exp/results/results.md" \
  trained="$exp/results/trained.json" untrained="$exp/results/untrained.json"
echo
echo "DET plot:         $exp/results/det.png"
echo "final checkpoint: $final"
echo "total time:       $(elapsed)"
