#!/usr/bin/env bash
# VoxCeleb recipe: train on VoxCeleb2 dev, evaluate on VoxCeleb1 O/E/H.
#
#   bash recipes/voxceleb/run.sh [--stage N] [--stop_stage M] [--config conf/X.yaml] [--data DIR]
#                                [--exp DIR] [--nj J] [--gpus "0,1"] [options] [key=value ...]
#
# Stages (each can be re-run alone; finished work is skipped):
#   1 check the VoxCeleb folders; download trial lists (and MUSAN / RIRs when the config augments)
#   2 convert VoxCeleb2 M4A to 16 kHz WAV/FLAC; write training, cohort, trial and evaluation lists
#   3 train (torchrun over --gpus, else one CPU process)
#   4 average the last --average_num epoch checkpoints
#   5 extract embeddings of every trial utterance and of the cohort (sharded over GPUs/processes)
#   6 score: cosine, and cosine with AS-norm
#   7 evaluate: EER / minDCF(0.01) / minDCF(0.05) table for Vox1-O/E/H, DET plots
#   8 calibrate on Vox1-O (cleaned) cosine scores; write the final checkpoint; ONNX export
#
# Other options (defaults in brackets):
#   --vox1_test DIR [DATA/voxceleb1/test/wav]  --vox1_dev DIR [DATA/voxceleb1/dev/wav]
#   --vox2_dev DIR [DATA/voxceleb2/dev/aac]    --vox2_wav DIR [DATA/voxceleb2/dev/wav] (stage 2 output)
#   --mirror DIR|URL [$SPEAKERVLAD_MIRROR]: fetch trial lists / musan.tar.gz / rirs_noises.zip from
#       there (a flat folder or base URL) instead of the official sites
#   --checksums true|false [true]   --allow_partial true|false [false] (accept incomplete VoxCeleb)
#   --audio_format wav|flac [wav]   --average_num N [10]   --cohort_per_speaker N [1]
#   --asnorm_top N [300]            --calib_list NAME [veri_test2.txt]
# Trailing key=value arguments override the config (e.g. train.epochs=10 data.batch_size=64).
set -euo pipefail

recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stage=1
stop_stage=8
config=conf/thin_resnet34_ghostvlad.yaml
data=$recipe/data
exp=
nj=$(nproc 2>/dev/null || echo 4)
gpus=
mirror=${SPEAKERVLAD_MIRROR:-}
vox1_test= vox1_dev= vox2_dev= vox2_wav=
checksums=true
allow_partial=false
audio_format=wav
average_num=10
cohort_per_speaker=1
asnorm_top=300
calib_list=veri_test2.txt

recipe_name=run.sh
. "$recipe/../lib/common.sh"
parse_options "stage stop_stage config data exp nj gpus mirror vox1_test vox1_dev vox2_dev vox2_wav checksums allow_partial audio_format average_num cohort_per_speaker asnorm_top calib_list" "$@"
[[ $stage =~ ^[1-8]$ && $stop_stage =~ ^[1-8]$ ]] || die "--stage and --stop_stage are stages 1-8 (got $stage, $stop_stage)"
[ "$stage" -le "$stop_stage" ] || die "--stage $stage is after --stop_stage $stop_stage: nothing would run"

command -v speakervlad >/dev/null 2>&1 ||
  die "the speakervlad command is not on PATH: run 'make setup' and add .venv/bin to PATH (or activate the venv)"
# the interpreter of the installed speakervlad runs the local/*.py helpers
python=$(speakervlad_python)

# config: a path (from here or the recipe folder) or a named config of the package
if [ -f "$config" ]; then config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
elif [ -f "$recipe/$config" ]; then config=$recipe/$config
fi
mkdir -p "$data"
data=$(cd "$data" && pwd)
exp=${exp:-$recipe/exp/$(basename "${config%.yaml}")}
mkdir -p "$exp"
exp=$(cd "$exp" && pwd)
vox1_test=${vox1_test:-$data/voxceleb1/test/wav}
vox1_dev=${vox1_dev:-$data/voxceleb1/dev/wav}
vox2_dev=${vox2_dev:-$data/voxceleb2/dev/aac}
vox2_wav=${vox2_wav:-$data/voxceleb2/dev/wav}
lists=$data/lists
done_dir=$data/.done
mkdir -p "$done_dir" "$exp/log"
if [ -n "$gpus" ]; then IFS=, read -r -a gpu_ids <<< "$gpus"; else gpu_ids=(); fi
ngpu=${#gpu_ids[@]}
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
config_value() { "$python" "$recipe/local/config_value.py" "$config" "$1" ${overrides[@]+"${overrides[@]}"}; }
positive() { awk -v x="$1" 'BEGIN { exit !(x > 0) }'; }

# official trial lists: name, line count (VoxCeleb1 site, meta/)
trial_lists=(veri_test.txt veri_test2.txt list_test_all.txt list_test_all2.txt list_test_hard.txt list_test_hard2.txt)
declare -A trial_lines=([veri_test.txt]=37720 [veri_test2.txt]=37611 [list_test_all.txt]=581480
  [list_test_all2.txt]=579818 [list_test_hard.txt]=552536 [list_test_hard2.txt]=550894)
trial_sites=(https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta https://mm.kaist.ac.kr/datasets/voxceleb/meta)
musan_url=https://www.openslr.org/resources/17/musan.tar.gz   musan_md5=0c472d4fc0c5141eca47ad1ffeb2a7df
rirs_url=https://www.openslr.org/resources/28/rirs_noises.zip rirs_md5=e6f48e257286e05de56413b4779d8ffb
voxceleb_site="https://www.robots.ox.ac.uk/~vgg/data/voxceleb/ (or https://mm.kaist.ac.kr/datasets/voxceleb/)"

# where to fetch FILE from: the mirror (a folder or base URL) or the official URLs given
sources() {
  local file=$1; shift
  if [ -z "$mirror" ]; then echo "$@"
  elif [ -d "$mirror" ]; then echo "file://$(cd "$mirror" && pwd)/$file"
  else echo "${mirror%/}/$file"
  fi
}
fetch() {  # fetch DEST MD5 FILE URL...
  local dest=$1 md5=$2 file=$3; shift 3
  [ "$checksums" = true ] || md5=-
  # shellcheck disable=SC2046
  bash "$recipe/local/download.sh" "$dest" "$md5" $(sources "$file" "$@")
}

augment_overrides=()
if run_stage 1 || run_stage 3; then
  values=$(config_value augment.noise_prob,augment.reverb_prob)
  read -r noise_prob reverb_prob <<< "$values"
  if positive "$noise_prob"; then augment_overrides+=("augment.musan_dir=$data/musan"); fi
  if positive "$reverb_prob"; then
    if [ -d "$data/RIRS_NOISES/simulated_rirs" ]; then
      augment_overrides+=("augment.rir_dir=$data/RIRS_NOISES/simulated_rirs")
    else
      augment_overrides+=("augment.rir_dir=")
    fi
  fi
fi

if run_stage 1; then
  log "stage 1: check the data; download trial lists${augment_overrides[*]:+, MUSAN, RIRs}"
  problems=()
  corpus_problem() {  # NAME DIR EXT SPEAKERS FILES ARCHIVE OPTION
    local rc=0 line
    line=$(bash "$recipe/local/check_corpus.sh" "$1" "$2" "$3" "$4" "$5") || rc=$?
    echo "  $line"
    if [ $rc -eq 1 ]; then
      problems+=("$line
      get it: request access at $voxceleb_site, download $6 and unzip it so that
      $2/idXXXXX/<video>/NNNNN.$3 exists (or pass $7 DIR)")
    elif [ $rc -eq 3 ] && [ "$allow_partial" != true ]; then
      problems+=("$line
      finish the download/unzip, or pass --allow_partial true to use what is there")
    elif [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
      die "local/check_corpus.sh failed on $2"
    fi
  }
  if [ -f "$done_dir/corpora" ]; then
    echo "  VoxCeleb folders checked before ($done_dir/corpora)"
  else
    corpus_problem "VoxCeleb1 test" "$vox1_test" wav 40 4874 vox1_test_wav.zip --vox1_test
    corpus_problem "VoxCeleb1 dev" "$vox1_dev" wav 1211 148642 "vox1_dev_wav_parta[a-d] (cat them into one zip)" --vox1_dev
    if [ -f "$done_dir/convert" ] && [ ! -d "$vox2_dev" ]; then
      echo "  VoxCeleb2 dev: M4A folder gone, converted audio in $vox2_wav (stage 2 done)"
    else
      corpus_problem "VoxCeleb2 dev" "$vox2_dev" m4a 5994 1092009 "vox2_dev_aac_parta[a-h] (cat them into one zip)" --vox2_dev
    fi
    [ ${#problems[@]} -gt 0 ] || touch "$done_dir/corpora"
  fi

  mkdir -p "$data/trials"
  for name in "${trial_lists[@]}"; do
    dest=$data/trials/$name
    [ -s "$dest" ] && { echo "  trial list $name: present"; continue; }
    urls=()
    for site in "${trial_sites[@]}"; do urls+=("$site/$name"); done
    if ! fetch "$dest" - "$name" "${urls[@]}" > "$exp/log/download_$name.log" 2>&1; then
      problems+=("trial list $name: download failed (see $exp/log/download_$name.log); put it at
      $dest (from ${urls[0]}), or pass --mirror DIR holding it")
      continue
    fi
    lines=$(awk 'END { print NR }' "$dest")
    if [ "$checksums" = true ] && [ "$lines" != "${trial_lines[$name]}" ]; then
      mv -f "$dest" "$dest.bad"
      problems+=("trial list $name: $lines lines, the official list has ${trial_lines[$name]}; moved to $dest.bad")
      continue
    fi
    echo "  trial list $name: downloaded ($lines trials)"
  done

  if [[ " ${augment_overrides[*]} " == *" augment.musan_dir="* ]]; then
    if [ -d "$data/musan/noise" ]; then
      echo "  MUSAN: present ($data/musan)"
    elif fetch "$data/downloads/musan.tar.gz" "$musan_md5" musan.tar.gz "$musan_url" > "$exp/log/download_musan.log" 2>&1 &&
        tar -xzf "$data/downloads/musan.tar.gz" -C "$data"; then
      echo "  MUSAN: downloaded and unpacked into $data/musan"
    else
      problems+=("MUSAN (the config adds noise: augment.noise_prob=$noise_prob): download failed (see
      $exp/log/download_musan.log); get $musan_url (11 GB, md5 $musan_md5), unpack it into $data
      so that $data/musan/{noise,music,speech} exist, or train without noise: augment.noise_prob=0")
    fi
  fi
  if [[ " ${augment_overrides[*]} " == *" augment.rir_dir="* ]]; then
    if [ -d "$data/RIRS_NOISES/simulated_rirs" ]; then
      echo "  RIRs: present ($data/RIRS_NOISES)"
    elif fetch "$data/downloads/rirs_noises.zip" "$rirs_md5" rirs_noises.zip "$rirs_url" > "$exp/log/download_rirs.log" 2>&1 &&
        (cd "$data" && unzip -q -o downloads/rirs_noises.zip); then
      echo "  RIRs: downloaded and unpacked into $data/RIRS_NOISES"
    else
      echo "  RIRs: download failed (see $exp/log/download_rirs.log); training will simulate rooms instead"
      echo "        (for the real ones: get $rirs_url and unzip it into $data)"
    fi
  fi

  if [ ${#problems[@]} -gt 0 ]; then
    {
      echo "stage 1: ${#problems[@]} thing(s) missing:"
      for p in "${problems[@]}"; do echo "  - $p"; done
    } >&2
    exit 1
  fi
  log "stage 1: done"
fi

if run_stage 2; then
  log "stage 2: convert VoxCeleb2 to 16 kHz $audio_format; write lists"
  if [ -f "$done_dir/convert" ]; then
    echo "  conversion done before ($vox2_wav)"
  else
    command -v ffmpeg >/dev/null 2>&1 || die "ffmpeg is needed to convert VoxCeleb2 M4A files: install it (apt install ffmpeg)"
    "$python" "$recipe/local/convert_audio.py" --src "$vox2_dev" --dst "$vox2_wav" \
      --format "$audio_format" --jobs "$nj"
    touch "$done_dir/convert"
  fi
  if [ -f "$done_dir/lists" ] && [ "$done_dir/lists" -nt "$done_dir/convert" ] &&
      [ -z "$(find "$data/trials" -name '*.txt' -newer "$done_dir/lists" 2>/dev/null)" ]; then
    echo "  lists written before ($lists)"
  else
    "$python" "$recipe/local/prepare_lists.py" --train-root "$vox2_wav" --vox1 "$vox1_test" \
      --vox1 "$vox1_dev" --trials-dir "$data/trials" --out "$lists" --cohort-per-speaker "$cohort_per_speaker"
    touch "$done_dir/lists"
  fi
  log "stage 2: done"
fi

model=$exp/avg_model.pt
if run_stage 3; then
  log "stage 3: train $config -> $exp"
  if [ -f "$exp/.done_train" ]; then
    echo "  trained before ($exp/.done_train)"
  else
    resume=()
    compgen -G "$exp/checkpoints/epoch_*.pt" >/dev/null && resume=(--resume)
    args=(--config "$config" --data "$lists/train.tsv" --exp "$exp" ${resume[@]+"${resume[@]}"}
          ${augment_overrides[@]+"${augment_overrides[@]}"} ${overrides[@]+"${overrides[@]}"})
    if [ "$ngpu" -gt 0 ]; then
      CUDA_VISIBLE_DEVICES=$gpus torchrun --standalone --nnodes=1 --nproc_per_node="$ngpu" \
        -m speakervlad.train --device cuda "${args[@]}"
    else
      echo "  no --gpus: training in one CPU process (slow for VoxCeleb; pass --gpus 0,1,... to use GPUs)"
      speakervlad train --device cpu "${args[@]}"
    fi
    epochs=$("$python" "$recipe/local/config_value.py" "$exp/config.yaml" train.epochs)
    last=$exp/checkpoints/$(printf 'epoch_%03d.pt' "$epochs")
    [ -f "$last" ] || die "training stopped before epoch $epochs ($last is missing: train.max_minutes or a signal); run stage 3 again to continue"
    touch "$exp/.done_train"
  fi
  log "stage 3: done"
fi

if run_stage 4; then
  log "stage 4: average the last $average_num epoch checkpoints"
  mapfile -t ckpts < <(compgen -G "$exp/checkpoints/epoch_[0-9][0-9][0-9].pt" | sort)
  [ ${#ckpts[@]} -gt 0 ] || die "no epoch checkpoints in $exp/checkpoints: run stage 3 first"
  if [ -f "$model" ] && [ "$model" -nt "${ckpts[-1]}" ]; then
    echo "  $model is newer than ${ckpts[-1]}: kept"
  else
    num=$(( ${#ckpts[@]} < average_num ? ${#ckpts[@]} : average_num ))
    speakervlad average --exp "$exp" --last "$num" -o "$model"
  fi
  log "stage 4: done"
fi

if run_stage 5; then
  [ -f "$model" ] || die "$model is missing: run stage 4 first"
  if [ "$ngpu" -gt 0 ]; then shards=$ngpu; else shards=$nj; fi
  decoders=$(( nj / shards > 1 ? nj / shards : 1 ))  # decoding threads per shard
  log "stage 5: extract embeddings ($shards shards)"
  for set in eval cohort; do
    out=$exp/embeddings/$set
    if [ -f "$out/embeddings.npy" ] && [ "$out/embeddings.npy" -nt "$model" ]; then
      echo "  $out: done before"; continue
    fi
    [ -f "$lists/$set.tsv" ] || die "$lists/$set.tsv is missing: run stage 2 first"
    # rows of an earlier model go; rows of this one are kept (a killed run resumes)
    if [ -d "$out" ] && find "$out" -name keys.txt ! -newer "$model" | grep -q .; then rm -rf "$out"; fi
    # every shard writes $out/shard-i-of-n; the last to finish merges them into $out
    pids=()
    for ((i = 0; i < shards; i++)); do
      if [ "$ngpu" -gt 0 ]; then
        device=(--device cuda); shard_env=(CUDA_VISIBLE_DEVICES="${gpu_ids[$i]}")
      else
        device=(--device cpu); shard_env=(OMP_NUM_THREADS=$(( $(nproc) / shards > 0 ? $(nproc) / shards : 1 )))
      fi
      env "${shard_env[@]}" speakervlad extract --model "$model" --list "$lists/$set.tsv" -o "$out" \
        --shard "$i/$shards" --jobs "$decoders" "${device[@]}" > "$exp/log/extract_$set.$i.log" 2>&1 &
      pids+=($!)
    done
    for ((i = 0; i < shards; i++)); do
      wait "${pids[$i]}" || { tail -n 5 "$exp/log/extract_$set.$i.log" >&2; die "extraction shard $i/$shards of $set failed (log: $exp/log/extract_$set.$i.log)"; }
    done
    [ -f "$out/keys.txt" ] || die "the shards of $out did not merge (logs: $exp/log/extract_$set.*.log)"
    echo "  $out: $(wc -l < "$out/keys.txt") embeddings"
  done
  log "stage 5: done"
fi

present_lists() { for name in "${trial_lists[@]}"; do [ -f "$lists/trials/$name" ] && echo "${name%.txt}"; done; return 0; }

if run_stage 6; then
  log "stage 6: score (cosine, AS-norm with the cohort, top $asnorm_top)"
  mkdir -p "$exp/scores"
  for name in $(present_lists); do
    for kind in cosine asnorm; do
      scores=$exp/scores/$name.$kind.txt
      if [ -f "$scores" ] && [ "$scores" -nt "$exp/embeddings/eval/embeddings.npy" ]; then
        echo "  $scores: done before"; continue
      fi
      extra=()
      [ $kind = asnorm ] && extra=(--asnorm-cohort "$exp/embeddings/cohort" --asnorm-top "$asnorm_top")
      speakervlad score --trials "$lists/trials/$name.txt" --embeddings "$exp/embeddings/eval" \
        ${extra[@]+"${extra[@]}"} -o "$scores"
    done
  done
  log "stage 6: done"
fi

if run_stage 7; then
  log "stage 7: evaluate"
  mapfile -t names < <(present_lists)
  [ ${#names[@]} -gt 0 ] || die "no trial lists in $lists/trials: run stage 2 first"
  mkdir -p "$exp/results"
  trials=()
  for name in "${names[@]}"; do trials+=("$lists/trials/$name.txt"); done
  for kind in cosine asnorm; do
    scores=()
    for name in "${names[@]}"; do scores+=("$exp/scores/$name.$kind.txt"); done
    speakervlad eval --trials "${trials[@]}" --scores "${scores[@]}" \
      --det "$exp/results/det_$kind.png" --json "$exp/results/$kind.json" > "$exp/log/eval_$kind.log"
  done
  "$python" "$recipe/local/results_table.py" --markdown "$exp/results/results.md" \
    cosine="$exp/results/cosine.json" AS-norm="$exp/results/asnorm.json" | tee "$exp/results/results.txt"
  echo "DET plots: $exp/results/det_cosine.png $exp/results/det_asnorm.png"
  log "stage 7: done (table: $exp/results/results.md)"
fi

if run_stage 8; then
  log "stage 8: calibrate on $calib_list (cosine scores); final checkpoint; ONNX export"
  [ -f "$lists/trials/$calib_list" ] || die "$lists/trials/$calib_list is missing (choose another with --calib_list)"
  final=$exp/final_model.pt
  calib_scores=$exp/scores/${calib_list%.txt}.cosine.txt
  [ -f "$calib_scores" ] || die "$calib_scores is missing: run stage 6 first"
  if [ -f "$final" ] && [ "$final" -nt "$calib_scores" ] && [ "$final" -nt "$model" ]; then
    echo "  $final: done before"
  else
    speakervlad calibrate --trials "$lists/trials/$calib_list" --scores "$calib_scores" \
      -o "$exp/calibration.json" --model "$model" --into "$final"
  fi
  if speakervlad export --help >/dev/null 2>&1; then
    if [ -f "$exp/final_model.onnx" ] && [ "$exp/final_model.onnx" -nt "$final" ]; then
      echo "  $exp/final_model.onnx: done before"
    else
      speakervlad export --model "$final" --format onnx -o "$exp/final_model.tmp.onnx"
      mv -f "$exp/final_model.tmp.onnx" "$exp/final_model.onnx"
    fi
  else
    echo "  this speakervlad has no 'export' command: ONNX export skipped"
  fi
  log "stage 8: done (final model: $final)"
fi
