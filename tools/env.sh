# Source this file (". tools/env.sh") to use ape, rx and anvil from a shell in the checkout.
_rx_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export SOLCX_BINARY_PATH="$_rx_root/.solcx"
export APE_DATA_FOLDER="$_rx_root/.ape"
export PATH="$_rx_root/.venv/bin:$_rx_root/node_modules/.bin:$PATH"
unset _rx_root
